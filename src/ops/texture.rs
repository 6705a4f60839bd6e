//! Copies a tensor, viewed as rows of `ld` floats, into a pooled rgba32float texture (see
//! `gpu::texture`): with a buffer-to-texture copy when rows are 256-byte multiples, else with
//! `shaders/texture_pack.wgsl`.

use anyhow::{Result, bail};
use bytemuck::{Pod, Zeroable};

use super::{ensure_f32, to_u32};
use crate::gpu::{Dispatch, PooledTexture, Tensor};
use crate::shaders::TEXTURE_PACK;

const WG: u32 = 64;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct Params {
    ld4: u32,
    n4: u32,
    width: u32,
    height: u32,
}

/// Texture size (width, height) in texels for `numel` floats in rows of `ld`.
pub fn texture_size(numel: usize, ld: usize) -> (usize, usize) {
    (ld / 4, numel.div_ceil(ld).max(1))
}

/// Packs `t` into a texture whose row y holds `t[y * ld .. (y + 1) * ld]` (ld % 4 == 0).
pub fn pack(t: &Tensor, ld: usize) -> Result<PooledTexture> {
    ensure_f32("texture pack", t)?;
    if ld == 0 || !ld.is_multiple_of(4) {
        bail!("texture pack: the row length {ld} must be a positive multiple of 4");
    }
    let (width, height) = texture_size(t.numel(), ld);
    let gpu = t.gpu();
    let texture = gpu.acquire_texture(
        to_u32("texture width", width)?,
        to_u32("texture height", height)?,
    )?;
    // Whole rows of 256-byte multiples copy with the copy engine (a memcpy on CPU adapters).
    let row_bytes = (ld * 4) as u64;
    if row_bytes.is_multiple_of(256)
        && t.numel().is_multiple_of(ld)
        && t.offset_bytes().is_multiple_of(16)
    {
        texture.copy_rows_from(t, row_bytes as u32, width as u32, height as u32);
        return Ok(texture);
    }
    let params = Params {
        ld4: (ld / 4) as u32,
        n4: to_u32("texture pack", t.numel().div_ceil(4))?,
        width: width as u32,
        height: height as u32,
    };
    gpu.dispatch(&Dispatch {
        shader: &TEXTURE_PACK,
        entry: "pack",
        defines: &[],
        overrides: &[("WG", WG as f64)],
        params: bytemuck::bytes_of(&params),
        buffers: &[t],
        textures: &[texture.view()],
        workgroups: [(width as u32).div_ceil(WG), height as u32, 1],
    })?;
    Ok(texture)
}
