//! Launchers for `shaders/softmax.wgsl`: masked, scaled row softmax with optional fused
//! dropout, and its backward.

use anyhow::{Result, bail};
use bytemuck::{Pod, Zeroable};

use super::dropout::{drop_threshold, keep_scale};
use super::{
    ROWS_WG, RowStrategy, dispatch_1d, ensure_f32, ensure_same_len, row_workgroup, rows_cols,
    to_u32,
};
use crate::gpu::{DType, Dispatch, Tensor};
use crate::shaders::SOFTMAX;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct Params {
    rows: u32,
    cols: u32,
    rows_per_mask: u32,
    scale: f32,
    seed: u32,
    threshold: u32,
    drop_scale: f32,
    queries: u32,
}

/// An additive mask of shape `[rows / rows_per_mask, cols]`: row `r` of the input uses mask
/// row `r / rows_per_mask` (for attention: a key-padding mask per sequence, shared by every
/// head and query, so `rows_per_mask = heads * queries`).
#[derive(Clone, Copy)]
pub struct RowMask<'a> {
    pub mask: &'a Tensor,
    pub rows_per_mask: usize,
}

/// A causal mask over blocks of `queries` rows: row `r` is query `i = r % queries`, and it
/// sees keys `0..=i + cols - queries` (decoder self-attention: `queries == cols`).
#[derive(Clone, Copy, Debug)]
pub struct Causal {
    pub queries: usize,
}

/// Dropout fused into the softmax: probability and seed (the mask is `ops::dropout`'s).
#[derive(Clone, Copy, Debug)]
pub struct FusedDropout {
    pub p: f32,
    pub seed: u32,
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

fn params(
    rows: usize,
    cols: usize,
    rows_per_mask: usize,
    scale: f32,
    dropout: Option<FusedDropout>,
    causal: Option<Causal>,
) -> Result<Params> {
    if let Some(d) = dropout
        && !(0.0..1.0).contains(&d.p)
    {
        bail!("dropout probability must be in [0, 1), got {}", d.p);
    }
    if let Some(c) = causal
        && (c.queries == 0 || c.queries > cols || !rows.is_multiple_of(c.queries))
    {
        bail!(
            "softmax: a causal mask over blocks of {} queries does not fit {rows} rows of {cols} keys",
            c.queries
        );
    }
    Ok(Params {
        rows: to_u32("softmax rows", rows)?,
        cols: to_u32("softmax cols", cols)?,
        rows_per_mask: to_u32("softmax rows per mask", rows_per_mask)?,
        scale,
        seed: dropout.map_or(0, |d| d.seed),
        threshold: dropout.map_or(0, |d| drop_threshold(d.p)),
        drop_scale: dropout.map_or(1.0, |d| keep_scale(d.p)),
        queries: to_u32("softmax causal queries", causal.map_or(1, |c| c.queries))?,
    })
}

/// `softmax(scale * x + mask)` over the last dimension of `x`.
pub fn softmax_forward(x: &Tensor, scale: f32, mask: Option<RowMask<'_>>) -> Result<Tensor> {
    let cols = x.shape().last().copied().unwrap_or(0);
    let strategy = RowStrategy::choose(x.gpu(), cols);
    Ok(softmax_forward_with(x, scale, mask, None, None, strategy)?.0)
}

/// The probabilities and, with `dropout`, the dropped probabilities in the same pass; with
/// `causal`, keys after each query are masked too.
pub fn softmax_forward_with(
    x: &Tensor,
    scale: f32,
    mask: Option<RowMask<'_>>,
    causal: Option<Causal>,
    dropout: Option<FusedDropout>,
    strategy: RowStrategy,
) -> Result<(Tensor, Option<Tensor>)> {
    ensure_f32("softmax input", x)?;
    let (rows, cols) = rows_cols("softmax input", x)?;
    let rows_per_mask = match mask {
        Some(m) => {
            ensure_f32("softmax mask", m.mask)?;
            if m.rows_per_mask == 0
                || !rows.is_multiple_of(m.rows_per_mask)
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
    let p = params(rows, cols, rows_per_mask, scale, dropout, causal)?;
    let y = Tensor::empty(gpu, x.shape(), x.dtype())?;
    // Without dropout the dropped-output binding is not written; bind a scratch float.
    let dropped = match dropout {
        Some(_) => Tensor::empty(gpu, x.shape(), DType::F32)?,
        None => Tensor::empty(gpu, &[4], DType::F32)?,
    };
    // Without a mask the binding is not read; bind the input in its place.
    let mask_buffer = mask.map(|m| m.mask).unwrap_or(x);
    let switches = [
        ("HAS_MASK", mask.is_some() as u32 as f64),
        ("HAS_DROPOUT", dropout.is_some() as u32 as f64),
        ("CAUSAL", causal.is_some() as u32 as f64),
    ];
    let buffers = [x, mask_buffer, &y, &dropped];
    match strategy {
        RowStrategy::Workgroup => gpu.dispatch(&Dispatch {
            shader: &SOFTMAX,
            entry: "softmax_forward",
            defines: &[],
            overrides: &[
                ("WG", workgroup(cols) as f64),
                switches[0],
                switches[1],
                switches[2],
            ],
            params: bytemuck::bytes_of(&p),
            buffers: &buffers,
            textures: &[],
            workgroups: gpu.grid_for(rows as u64, 1)?,
        })?,
        RowStrategy::PerInvocation => {
            check_vec4(cols)?;
            let bytes = bytemuck::bytes_of(&p);
            dispatch_1d(
                &SOFTMAX,
                "softmax_forward_rows",
                ROWS_WG,
                &switches,
                bytes,
                &buffers,
                rows as u64,
            )?
        }
    }
    Ok((y, dropout.map(|_| dropped)))
}

/// Gradient of `softmax(scale * x + mask)` with respect to `x`, from the output `y`.
pub fn softmax_backward(y: &Tensor, dy: &Tensor, scale: f32) -> Result<Tensor> {
    let cols = y.shape().last().copied().unwrap_or(0);
    softmax_backward_with(y, dy, scale, None, RowStrategy::choose(y.gpu(), cols))
}

/// The backward; with `dropout`, `dy` is the gradient of the dropped probabilities and the
/// dropout's backward is applied in the same pass.
pub fn softmax_backward_with(
    y: &Tensor,
    dy: &Tensor,
    scale: f32,
    dropout: Option<FusedDropout>,
    strategy: RowStrategy,
) -> Result<Tensor> {
    ensure_same_len("softmax backward", y, dy)?;
    let (rows, cols) = rows_cols("softmax output", y)?;
    let gpu = y.gpu();
    let dx = Tensor::empty(gpu, y.shape(), y.dtype())?;
    let p = params(rows, cols, 1, scale, dropout, None)?;
    let has_dropout = ("HAS_DROPOUT", dropout.is_some() as u32 as f64);
    match strategy {
        RowStrategy::Workgroup => gpu.dispatch(&Dispatch {
            shader: &SOFTMAX,
            entry: "softmax_backward",
            defines: &[],
            overrides: &[("WG", workgroup(cols) as f64), has_dropout],
            params: bytemuck::bytes_of(&p),
            buffers: &[y, dy, &dx],
            textures: &[],
            workgroups: gpu.grid_for(rows as u64, 1)?,
        })?,
        RowStrategy::PerInvocation => {
            check_vec4(cols)?;
            let bytes = bytemuck::bytes_of(&p);
            dispatch_1d(
                &SOFTMAX,
                "softmax_backward_rows",
                ROWS_WG,
                &[has_dropout],
                bytes,
                &[y, dy, &dx],
                rows as u64,
            )?
        }
    }
    Ok(dx)
}
