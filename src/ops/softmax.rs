//! Launchers for `shaders/softmax.wgsl`: masked, scaled row softmax and its backward.

use anyhow::{Result, bail};
use bytemuck::{Pod, Zeroable};

use super::{
    ROWS_WG, RowStrategy, dispatch_1d, ensure_f32, ensure_same_len, row_workgroup, rows_cols,
    to_u32,
};
use crate::gpu::{Dispatch, Tensor};
use crate::shaders::SOFTMAX;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    rows_per_mask: u32,
    scale: f32,
}

/// An additive mask of shape `[rows / rows_per_mask, cols]`: row `r` of the input uses mask
/// row `r / rows_per_mask` (for attention: a key-padding mask per sequence, shared by every
/// head and query, so `rows_per_mask = heads * queries`).
#[derive(Clone, Copy)]
pub struct RowMask<'a> {
    pub mask: &'a Tensor,
    pub rows_per_mask: usize,
}

fn check_vec4(cols: usize) -> Result<()> {
    if !cols.is_multiple_of(4) {
        bail!("softmax: the per-invocation kernel needs a row length divisible by 4, got {cols}");
    }
    Ok(())
}

fn workgroup(cols: usize) -> u32 {
    row_workgroup(cols, 32, 256)
}

/// `softmax(scale * x + mask)` over the last dimension of `x`.
pub fn softmax_forward(x: &Tensor, scale: f32, mask: Option<RowMask<'_>>) -> Result<Tensor> {
    let cols = x.shape().last().copied().unwrap_or(0);
    softmax_forward_with(x, scale, mask, RowStrategy::choose(x.gpu(), cols))
}

/// [`softmax_forward`] with an explicit row strategy.
pub fn softmax_forward_with(
    x: &Tensor,
    scale: f32,
    mask: Option<RowMask<'_>>,
    strategy: RowStrategy,
) -> Result<Tensor> {
    ensure_f32("softmax input", x)?;
    let (rows, cols) = rows_cols("softmax input", x)?;
    let rows_per_mask = match mask {
        Some(m) => {
            ensure_f32("softmax mask", m.mask)?;
            if m.rows_per_mask == 0
                || rows % m.rows_per_mask != 0
                || m.mask.numel() != rows / m.rows_per_mask * cols
            {
                bail!(
                    "softmax: mask {:?} with {} rows per mask row does not fit input {:?}",
                    m.mask.shape(),
                    m.rows_per_mask,
                    x.shape()
                );
            }
            m.rows_per_mask
        }
        None => 1,
    };
    let gpu = x.gpu();
    let y = Tensor::empty(gpu, x.shape(), x.dtype())?;
    let params = Params {
        rows: to_u32("softmax rows", rows)?,
        cols: to_u32("softmax cols", cols)?,
        rows_per_mask: to_u32("softmax rows per mask", rows_per_mask)?,
        scale,
    };
    let wg = workgroup(cols);
    // Without a mask the binding is not read; bind the input in its place.
    let mask_buffer = mask.map(|m| m.mask).unwrap_or(x);
    let has_mask = ("HAS_MASK", mask.is_some() as u32 as f64);
    match strategy {
        RowStrategy::Workgroup => gpu.dispatch(&Dispatch {
            shader: &SOFTMAX,
            entry: "softmax_forward",
            overrides: &[("WG", wg as f64), has_mask],
            params: bytemuck::bytes_of(&params),
            buffers: &[x, mask_buffer, &y],
            textures: &[],
            workgroups: gpu.grid_for(rows as u64, 1)?,
        })?,
        RowStrategy::PerInvocation => {
            check_vec4(cols)?;
            let buffers = [x, mask_buffer, &y];
            let bytes = bytemuck::bytes_of(&params);
            dispatch_1d(
                &SOFTMAX,
                "softmax_forward_rows",
                ROWS_WG,
                &[has_mask],
                bytes,
                &buffers,
                rows as u64,
            )?
        }
    }
    Ok(y)
}

/// Gradient of `softmax(scale * x + mask)` with respect to `x`, from the output `y`.
pub fn softmax_backward(y: &Tensor, dy: &Tensor, scale: f32) -> Result<Tensor> {
    let cols = y.shape().last().copied().unwrap_or(0);
    softmax_backward_with(y, dy, scale, RowStrategy::choose(y.gpu(), cols))
}

/// [`softmax_backward`] with an explicit row strategy.
pub fn softmax_backward_with(
    y: &Tensor,
    dy: &Tensor,
    scale: f32,
    strategy: RowStrategy,
) -> Result<Tensor> {
    ensure_same_len("softmax backward", y, dy)?;
    let (rows, cols) = rows_cols("softmax output", y)?;
    let gpu = y.gpu();
    let dx = Tensor::empty(gpu, y.shape(), y.dtype())?;
    let params = Params {
        rows: to_u32("softmax rows", rows)?,
        cols: to_u32("softmax cols", cols)?,
        rows_per_mask: 1,
        scale,
    };
    match strategy {
        RowStrategy::Workgroup => gpu.dispatch(&Dispatch {
            shader: &SOFTMAX,
            entry: "softmax_backward",
            overrides: &[("WG", workgroup(cols) as f64)],
            params: bytemuck::bytes_of(&params),
            buffers: &[y, dy, &dx],
            textures: &[],
            workgroups: gpu.grid_for(rows as u64, 1)?,
        })?,
        RowStrategy::PerInvocation => {
            check_vec4(cols)?;
            let bytes = bytemuck::bytes_of(&params);
            dispatch_1d(
                &SOFTMAX,
                "softmax_backward_rows",
                ROWS_WG,
                &[],
                bytes,
                &[y, dy, &dx],
                rows as u64,
            )?
        }
    }
    Ok(dx)
}
