//! Kernel launchers: one module per shader family, forward and backward side by side.
//!
//! Every launcher checks shapes and element types, picks the workgroup shape, and goes
//! through [`crate::gpu::Gpu::dispatch`]. Results are new tensors unless the name ends in
//! `_into`, which writes (or, with `accumulate`, adds) into a tensor the caller owns.

pub mod activation;
pub mod adamw;
pub mod attention;
pub mod autotune;
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
        if gpu.adapter_info().device_type == wgpu::DeviceType::Cpu && width.is_multiple_of(4) {
            RowStrategy::PerInvocation
        } else {
            RowStrategy::Workgroup
        }
    }
}

/// Workgroup size of the per-invocation row kernels.
pub(crate) const ROWS_WG: u32 = 64;
