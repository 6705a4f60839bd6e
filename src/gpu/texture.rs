//! Pooled 2-D `rgba32float` textures. Kernels that read an operand many times per invocation
//! can read it through a texture: on CPU adapters (lavapipe) a texel fetch is far cheaper
//! than a storage-buffer load whose address differs per invocation. Textures are filled on
//! the GPU (`ops::texture::pack`) and pooled like buffers: freed ones retire until the next
//! submit, but since only encoder commands write them they may be reused right away.

use std::collections::HashMap;
use std::sync::Mutex;

use anyhow::{Result, bail};

use super::context::Gpu;
use super::tensor::Tensor;

/// Bytes per texel of `rgba32float`.
pub const TEXEL_BYTES: u64 = 16;

type Key = (u32, u32);

#[derive(Default)]
pub(crate) struct TexturePool {
    free: Mutex<HashMap<Key, Vec<wgpu::Texture>>>,
}

/// A pooled texture with its default view; returns to the pool when dropped.
pub struct PooledTexture {
    texture: Option<wgpu::Texture>,
    view: wgpu::TextureView,
    key: Key,
    gpu: Gpu,
}

impl PooledTexture {
    pub fn view(&self) -> &wgpu::TextureView {
        &self.view
    }

    /// (width, height) in texels.
    pub fn size(&self) -> (u32, u32) {
        self.key
    }

    /// Records a copy of `t`'s rows (`row_bytes` each, a multiple of 256; the tensor's byte
    /// offset a multiple of 16) into the top-left `width x height` texels.
    pub fn copy_rows_from(&self, t: &Tensor, row_bytes: u32, width: u32, height: u32) {
        t.gpu().record(|enc| {
            enc.copy_buffer_to_texture(
                wgpu::TexelCopyBufferInfo {
                    buffer: t.buffer(),
                    layout: wgpu::TexelCopyBufferLayout {
                        offset: t.offset_bytes(),
                        bytes_per_row: Some(row_bytes),
                        rows_per_image: Some(height),
                    },
                },
                wgpu::TexelCopyTextureInfo {
                    texture: self.texture(),
                    mip_level: 0,
                    origin: wgpu::Origin3d::ZERO,
                    aspect: wgpu::TextureAspect::All,
                },
                wgpu::Extent3d {
                    width,
                    height,
                    depth_or_array_layers: 1,
                },
            )
        });
    }

    pub fn texture(&self) -> &wgpu::Texture {
        self.texture.as_ref().expect("texture present until drop")
    }
}

impl Drop for PooledTexture {
    fn drop(&mut self) {
        if let Some(texture) = self.texture.take() {
            let bytes = self.key.0 as u64 * self.key.1 as u64 * TEXEL_BYTES;
            self.gpu.inner.pool.account(0, -(bytes as i64));
            let mut free = self.gpu.inner.textures.free.lock().unwrap();
            free.entry(self.key).or_default().push(texture);
        }
    }
}

impl Gpu {
    /// A `width x height` rgba32float texture usable as a sampled and a storage texture.
    pub fn acquire_texture(&self, width: u32, height: u32) -> Result<PooledTexture> {
        let max = self.limits().max_texture_dimension_2d;
        if width == 0 || height == 0 || width > max || height > max {
            bail!(
                "a {width} x {height} texture exceeds this adapter's max_texture_dimension_2d ({max})"
            );
        }
        let key = (width, height);
        let bytes = width as u64 * height as u64 * TEXEL_BYTES;
        let reused = self
            .inner
            .textures
            .free
            .lock()
            .unwrap()
            .get_mut(&key)
            .and_then(Vec::pop);
        let texture = match reused {
            Some(t) => {
                self.inner.pool.account(0, bytes as i64);
                t
            }
            None => {
                self.inner.pool.account(bytes as i64, bytes as i64);
                self.device().create_texture(&wgpu::TextureDescriptor {
                    label: Some("taskgate operand texture"),
                    size: wgpu::Extent3d {
                        width,
                        height,
                        depth_or_array_layers: 1,
                    },
                    mip_level_count: 1,
                    sample_count: 1,
                    dimension: wgpu::TextureDimension::D2,
                    format: wgpu::TextureFormat::Rgba32Float,
                    usage: wgpu::TextureUsages::TEXTURE_BINDING
                        | wgpu::TextureUsages::STORAGE_BINDING
                        | wgpu::TextureUsages::COPY_DST,
                    view_formats: &[],
                })
            }
        };
        let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
        Ok(PooledTexture {
            texture: Some(texture),
            view,
            key,
            gpu: self.clone(),
        })
    }
}
