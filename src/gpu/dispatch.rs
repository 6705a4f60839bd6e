//! The one dispatch helper every kernel launcher goes through.
//!
//! Binding convention for every shader in `shaders/`: `@binding(0)` is the kernel's uniform
//! parameter struct (when it has one), and the storage buffers follow at bindings 1, 2, ...
//! in the order the launcher passes its tensors. Bindings an entry point does not use are
//! skipped (naga tells us which). Before anything reaches wgpu, sizes are checked against the
//! device limits and writable aliasing is refused, so a bad shape is an error, not a panic.

use anyhow::{Result, bail};

use super::context::Gpu;
use super::pipeline::BindingKind;
use super::pool::size_class;
use super::tensor::Tensor;
use crate::shaders::ShaderSource;

const UNIFORM_USAGE: wgpu::BufferUsages =
    wgpu::BufferUsages::UNIFORM.union(wgpu::BufferUsages::COPY_DST);

/// One kernel launch.
pub struct Dispatch<'a> {
    pub shader: &'static ShaderSource,
    pub entry: &'static str,
    /// Compile-time defines `(NAME, VALUE)` selecting a variant of the shader's text (one of
    /// its declared [`crate::shaders::Define`]s each); empty for the default variant.
    pub defines: &'a [(&'a str, &'a str)],
    /// WGSL `override` constants (tunables and compile-time switches).
    pub overrides: &'a [(&'static str, f64)],
    /// Bytes of the uniform parameter struct at binding 0; empty when the shader has none.
    pub params: &'a [u8],
    /// The storage buffers the entry point uses, in binding order.
    pub buffers: &'a [&'a Tensor],
    /// The textures (sampled or storage) the entry point uses, in binding order.
    pub textures: &'a [&'a wgpu::TextureView],
    pub workgroups: [u32; 3],
}

/// Workgroup counts covering `groups` workgroups of 1-D work, folded into two dimensions when
/// one would exceed `max_per_dim`. Shaders recover the linear workgroup index as
/// `wid.y * num_workgroups.x + wid.x` and must ignore indices past the end.
pub fn grid_1d(groups: u64, max_per_dim: u32) -> Result<[u32; 3]> {
    let max = max_per_dim as u64;
    if groups <= max {
        return Ok([groups as u32, 1, 1]);
    }
    let y = groups.div_ceil(max);
    if y > max {
        bail!("{groups} workgroups exceed the dispatch limit of {max} x {max}");
    }
    let x = groups.div_ceil(y);
    Ok([x as u32, y as u32, 1])
}

impl Gpu {
    /// Workgroup counts for `items` work items handled `per_workgroup` at a time.
    pub fn grid_for(&self, items: u64, per_workgroup: u32) -> Result<[u32; 3]> {
        grid_1d(
            items.div_ceil(per_workgroup as u64),
            self.limits().max_compute_workgroups_per_dimension,
        )
    }

    /// Validates and records one kernel launch on the pending encoder.
    pub fn dispatch(&self, d: &Dispatch<'_>) -> Result<()> {
        let pipelines = &self.inner.pipelines;
        let kernel = pipelines.get(self.device(), d.shader, d.entry, d.defines, d.overrides)?;
        let label = &kernel.label;
        let reflection = &kernel.reflection;
        let used = |binding: u32| reflection.used.contains(&binding);
        let storage: Vec<_> = reflection
            .declared
            .iter()
            .filter(|b| b.kind.is_buffer() && used(b.binding))
            .collect();
        let textures: Vec<_> = reflection
            .declared
            .iter()
            .filter(|b| b.kind.is_texture() && used(b.binding))
            .collect();
        if textures.len() != d.textures.len() {
            bail!(
                "kernel {label} uses {} textures, the launcher passed {}",
                textures.len(),
                d.textures.len()
            );
        }
        let has_uniform = reflection
            .declared
            .iter()
            .any(|b| b.kind == BindingKind::Uniform && used(b.binding));
        if storage.len() != d.buffers.len() {
            bail!(
                "kernel {label} uses {} storage buffers, the launcher passed {}",
                storage.len(),
                d.buffers.len()
            );
        }
        if has_uniform && d.params.is_empty() {
            bail!("kernel {label} needs uniform parameters, none were passed");
        }
        let limits = self.limits();
        let max_dim = limits.max_compute_workgroups_per_dimension;
        if d.workgroups.iter().any(|&n| n > max_dim) {
            bail!(
                "kernel {label}: {:?} workgroups exceed this adapter's limit of {max_dim} per \
                 dimension; the shape is too large for one dispatch",
                d.workgroups
            );
        }
        if d.workgroups.contains(&0) {
            return Ok(());
        }
        let mut entries_sizes = Vec::with_capacity(storage.len());
        let align = limits.min_storage_buffer_offset_alignment as u64;
        for (info, tensor) in storage.iter().zip(d.buffers) {
            if tensor.offset_bytes() % align != 0 {
                bail!(
                    "kernel {label}: buffer '{}' is a view at byte offset {}, not a multiple of \
                     this adapter's min_storage_buffer_offset_alignment ({align})",
                    info.name,
                    tensor.offset_bytes()
                );
            }
            let size = tensor.bytes().max(16).div_ceil(16) * 16;
            let size = size.min(tensor.capacity());
            if size > limits.max_storage_buffer_binding_size {
                bail!(
                    "kernel {label}: buffer '{}' {:?} needs {} MiB, more than this adapter's \
                     max_storage_buffer_binding_size of {} MiB; use a smaller batch or \
                     sequence length",
                    info.name,
                    tensor.shape(),
                    tensor.bytes().div_ceil(1 << 20),
                    limits.max_storage_buffer_binding_size >> 20
                );
            }
            if info.kind == BindingKind::StorageReadWrite {
                let clash = storage
                    .iter()
                    .zip(d.buffers)
                    .find(|(other, t)| other.binding != info.binding && t.same_buffer(tensor));
                if let Some((other, _)) = clash {
                    bail!(
                        "kernel {label}: writable buffer '{}' is also bound as '{}'",
                        info.name,
                        other.name
                    );
                }
            }
            entries_sizes.push((info.binding, *tensor, size));
        }

        let uniform = if has_uniform {
            let bytes = d.params.len() as u64;
            let buf = self
                .inner
                .pool
                .acquire(UNIFORM_USAGE, bytes, size_class(bytes), false);
            self.queue().write_buffer(buf.buffer(), 0, d.params);
            Some(buf)
        } else {
            None
        };
        let mut entries: Vec<wgpu::BindGroupEntry<'_>> =
            Vec::with_capacity(entries_sizes.len() + 1);
        if let Some(buf) = &uniform {
            entries.push(wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: buf.buffer(),
                    offset: 0,
                    size: wgpu::BufferSize::new(d.params.len().div_ceil(16) as u64 * 16),
                }),
            });
        }
        for (info, view) in textures.iter().zip(d.textures) {
            entries.push(wgpu::BindGroupEntry {
                binding: info.binding,
                resource: wgpu::BindingResource::TextureView(view),
            });
        }
        for (binding, tensor, size) in &entries_sizes {
            entries.push(wgpu::BindGroupEntry {
                binding: *binding,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: tensor.buffer(),
                    offset: tensor.offset_bytes(),
                    size: wgpu::BufferSize::new(*size),
                }),
            });
        }
        let bind_group = self.device().create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(label),
            layout: &kernel.layout,
            entries: &entries,
        });
        let timing = self.profile_pass(label)?;
        #[cfg(not(target_arch = "wasm32"))]
        let wall = if self.profiling_wall_clock() {
            self.wait_idle()?;
            Some(std::time::Instant::now())
        } else {
            None
        };
        self.record(|encoder| {
            let timestamp_writes =
                timing
                    .as_ref()
                    .map(|(set, index)| wgpu::ComputePassTimestampWrites {
                        query_set: set,
                        beginning_of_pass_write_index: Some(*index),
                        end_of_pass_write_index: Some(*index + 1),
                    });
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(label),
                timestamp_writes,
            });
            pass.set_pipeline(&kernel.pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            let [x, y, z] = d.workgroups;
            pass.dispatch_workgroups(x, y, z);
        });
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(start) = wall {
            self.wait_idle()?;
            self.record_wall_time(label, start.elapsed().as_secs_f64());
        }
        self.note_dispatch()
    }
}

#[cfg(test)]
mod tests {
    use super::grid_1d;

    #[test]
    fn large_1d_grids_fold_into_two_dimensions() {
        assert_eq!(grid_1d(10, 65535).unwrap(), [10, 1, 1]);
        assert_eq!(grid_1d(65535, 65535).unwrap(), [65535, 1, 1]);
        let [x, y, _] = grid_1d(65536, 65535).unwrap();
        assert!(x <= 65535 && y == 2 && x as u64 * y as u64 >= 65536);
        let [x, y, _] = grid_1d(1_000_000_007, 65535).unwrap();
        assert!(x <= 65535 && y <= 65535 && x as u64 * y as u64 >= 1_000_000_007);
        assert!(grid_1d(65535u64 * 65535 + 1, 65535).is_err());
    }
}
