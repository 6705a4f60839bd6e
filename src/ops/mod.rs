//! Kernel launchers: one module per shader family, forward and backward side by side.
//!
//! Every launcher checks shapes and element types, picks the workgroup shape, and goes
//! through [`crate::gpu::Gpu::dispatch`]. Results are new tensors unless the name ends in
//! `_into`, which writes (or, with `accumulate`, adds) into a tensor the caller owns.

pub mod activation;
pub mod adamw;
pub mod attention;
pub mod autotune;
pub mod copy;
pub mod dropout;
pub mod elementwise;
pub mod embedding;
pub mod gate;
pub mod layernorm;
pub mod loss;
pub mod matmul;
pub mod reduce;
pub mod softmax;
pub mod texture;

use anyhow::{Result, bail};

use crate::gpu::{DType, Dispatch, Tensor};
use crate::shaders::ShaderSource;

/// Errors unless `t` holds f32 values.
pub(crate) fn ensure_f32(what: &str, t: &Tensor) -> Result<()> {
    if t.dtype() != DType::F32 {
        bail!("{what}: expected f32 values, got {:?}", t.dtype());
    }
    Ok(())
}

/// Errors unless both tensors hold the same number of f32 values.
pub(crate) fn ensure_same_len(what: &str, a: &Tensor, b: &Tensor) -> Result<()> {
    ensure_f32(what, a)?;
    ensure_f32(what, b)?;
    if a.numel() != b.numel() {
        bail!(
            "{what}: element counts differ ({:?} vs {:?})",
            a.shape(),
            b.shape()
        );
    }
    Ok(())
}

/// Splits a tensor into (rows, cols) by its last dimension.
pub(crate) fn rows_cols(what: &str, t: &Tensor) -> Result<(usize, usize)> {
    let Some(&cols) = t.shape().last() else {
        bail!("{what}: expected at least one dimension, got a scalar");
    };
    if cols == 0 {
        return Ok((0, 0));
    }
    Ok((t.numel() / cols, cols))
}

/// Converts a size to the u32 kernels index with, or errors.
pub(crate) fn to_u32(what: &str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| anyhow::anyhow!("{what}: {v} exceeds the 32-bit index range"))
}

/// Smallest power of two >= `n`, clamped to [lo, hi]: a workgroup width for row kernels.
pub(crate) fn row_workgroup(n: usize, lo: u32, hi: u32) -> u32 {
    (n.max(1).next_power_of_two() as u32).clamp(lo, hi)
}

/// Launches `items` invocations of a 1-D kernel whose workgroup size is its `WG` override,
/// folding the grid into two dimensions when large.
pub(crate) fn dispatch_1d(
    shader: &'static ShaderSource,
    entry: &'static str,
    wg: u32,
    switches: &[(&'static str, f64)],
    params: &[u8],
    buffers: &[&Tensor],
    items: u64,
) -> Result<()> {
    let gpu = buffers[0].gpu();
    let mut overrides = vec![("WG", wg as f64)];
    overrides.extend_from_slice(switches);
    gpu.dispatch(&Dispatch {
        shader,
        entry,
        defines: &[],
        overrides: &overrides,
        params,
        buffers,
        textures: &[],
        workgroups: gpu.grid_for(items, wg)?,
    })
}

/// How a row-wise kernel (LayerNorm, softmax) spreads a row over invocations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowStrategy {
    /// A workgroup per row, reducing through workgroup memory (GPUs).
    Workgroup,
    /// One invocation per row with vec4 loads and no barriers (CPU adapters; the row width
    /// must be a multiple of 4).
    PerInvocation,
}

impl RowStrategy {
    /// The better strategy for rows of `width` on `gpu`.
    pub fn choose(gpu: &crate::gpu::Gpu, width: usize) -> Self {
        if gpu.is_cpu_adapter() && width.is_multiple_of(4) {
            RowStrategy::PerInvocation
        } else {
            RowStrategy::Workgroup
        }
    }
}

/// Workgroup size of the per-invocation row kernels.
pub(crate) const ROWS_WG: u32 = 64;

#[cfg(test)]
mod tests {
    use crate::gpu::pipeline::validate_wgsl;
    use crate::shaders::{self, ShaderSource};

    /// Each shader and the Rust struct its launcher writes into its uniform at `@binding(0)`.
    fn launcher_params() -> Vec<(&'static ShaderSource, &'static str, usize)> {
        macro_rules! params {
            ($($shader:ident => $module:ident),* $(,)?) => {
                vec![$((
                    &shaders::$shader,
                    concat!("ops::", stringify!($module), "::Params"),
                    size_of::<super::$module::Params>(),
                )),*]
            };
        }
        params! {
            ACTIVATION => activation,
            ADAMW => adamw,
            ATTENTION => attention,
            COPY => copy,
            DROPOUT => dropout,
            ELEMENTWISE => elementwise,
            EMBEDDING => embedding,
            GATE => gate,
            LAYERNORM => layernorm,
            LOSS => loss,
            MATMUL => matmul,
            MATMUL_SUBGROUP => matmul,
            MATMUL_TILED => matmul,
            MATMUL_VEC4 => matmul,
            REDUCE => reduce,
            SOFTMAX => softmax,
            TEXTURE_PACK => texture,
        }
    }

    /// Every launcher's `Params` has the size naga lays out for its shader's uniform struct,
    /// and every uniform of every shader has a launcher struct (no GPU needed).
    #[test]
    fn params_structs_match_their_wgsl_uniforms() {
        let registry = launcher_params();
        let mut mismatches = Vec::new();
        for shader in shaders::ALL {
            let text = shader.text(&shader.variant(&[]).unwrap());
            let (module, _) = validate_wgsl(shader.name, &text).unwrap();
            let mut layouter = naga::proc::Layouter::default();
            layouter.update(module.to_ctx()).unwrap();
            let uniforms: Vec<_> = module
                .global_variables
                .iter()
                .filter(|(_, var)| var.space == naga::AddressSpace::Uniform)
                .map(|(_, var)| var)
                .collect();
            let rust = registry.iter().find(|(s, ..)| s.name == shader.name);
            match (uniforms.as_slice(), rust) {
                ([], None) => {}
                ([var], Some((_, rust_name, rust_size))) => {
                    let binding = var.binding.as_ref().map(|b| (b.group, b.binding));
                    assert_eq!(
                        binding,
                        Some((0, 0)),
                        "{}: the uniform must be @group(0) @binding(0)",
                        shader.name
                    );
                    let ty = &module.types[var.ty];
                    let wgsl_size = layouter[var.ty].size as usize;
                    if wgsl_size != *rust_size {
                        mismatches.push(format!(
                            "{}: WGSL uniform `{}: {}` is {wgsl_size} bytes, Rust {rust_name} \
                             is {rust_size} bytes",
                            shader.name,
                            var.name.as_deref().unwrap_or("?"),
                            ty.name.as_deref().unwrap_or("?"),
                        ));
                    }
                }
                (found, rust) => mismatches.push(format!(
                    "{}: {} uniforms in WGSL, Rust struct {:?}; expected one uniform and one \
                     registered struct (or neither)",
                    shader.name,
                    found.len(),
                    rust.map(|(_, name, _)| name)
                )),
            }
        }
        assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    }
}
