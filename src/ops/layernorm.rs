//! Launchers for `shaders/layernorm.wgsl`: LayerNorm forward (saving mean and 1/std) and
//! backward (dx per row; dgamma and dbeta as chunked column sums).

use anyhow::{Result, bail};
use bytemuck::{Pod, Zeroable};

use super::{
    ROWS_WG, RowStrategy, dispatch_1d, ensure_f32, reduce::colsum_into, row_workgroup, rows_cols,
    to_u32,
};
use crate::gpu::{DType, Dispatch, Tensor};
use crate::shaders::LAYERNORM;

/// Rows per chunk of the parameter-gradient partial sums.
const CHUNK_ROWS: usize = 64;
const PARAM_WG: u32 = 64;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct Params {
    rows: u32,
    d: u32,
    eps: f32,
    chunk_rows: u32,
}

fn check_vec4(d: usize) -> Result<()> {
    if !d.is_multiple_of(4) {
        bail!("layernorm: the per-invocation kernel needs a width divisible by 4, got {d}");
    }
    Ok(())
}

/// Forward results kept for the backward.
pub struct LayerNormOutput {
    pub y: Tensor,
    /// Per-row mean, `[rows]`.
    pub mean: Tensor,
    /// Per-row `1 / sqrt(var + eps)`, `[rows]`.
    pub rstd: Tensor,
}

/// Gradients of LayerNorm.
pub struct LayerNormGrads {
    pub dx: Tensor,
    pub dgamma: Tensor,
    pub dbeta: Tensor,
}

fn params(x: &Tensor, gamma: &Tensor, eps: f32) -> Result<(Params, usize, usize)> {
    ensure_f32("layernorm input", x)?;
    let (rows, d) = rows_cols("layernorm input", x)?;
    gamma.expect("layernorm gamma", &[d], DType::F32)?;
    Ok((
        Params {
            rows: to_u32("layernorm rows", rows)?,
            d: to_u32("layernorm width", d)?,
            eps,
            chunk_rows: CHUNK_ROWS as u32,
        },
        rows,
        d,
    ))
}

/// `(x - mean) / sqrt(var + eps) * gamma + beta` over the last dimension.
pub fn layernorm_forward(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f32,
) -> Result<LayerNormOutput> {
    let d = gamma.numel();
    layernorm_forward_with(x, gamma, beta, eps, RowStrategy::choose(x.gpu(), d))
}

/// [`layernorm_forward`] with an explicit row strategy.
pub fn layernorm_forward_with(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f32,
    strategy: RowStrategy,
) -> Result<LayerNormOutput> {
    Ok(forward_impl(x, None, gamma, beta, eps, strategy)?.1)
}

/// LayerNorm of `x + residual` in one kernel (the residual connection fused in): returns the
/// sum (which the backward needs) and the LayerNorm output.
pub fn layernorm_forward_residual(
    x: &Tensor,
    residual: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f32,
) -> Result<(Tensor, LayerNormOutput)> {
    let strategy = RowStrategy::choose(x.gpu(), gamma.numel());
    layernorm_forward_residual_with(x, residual, gamma, beta, eps, strategy)
}

/// [`layernorm_forward_residual`] with an explicit row strategy.
pub fn layernorm_forward_residual_with(
    x: &Tensor,
    residual: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f32,
    strategy: RowStrategy,
) -> Result<(Tensor, LayerNormOutput)> {
    if residual.shape() != x.shape() {
        bail!(
            "layernorm: residual {:?} must match x {:?}",
            residual.shape(),
            x.shape()
        );
    }
    let (sum, out) = forward_impl(x, Some(residual), gamma, beta, eps, strategy)?;
    Ok((sum.expect("a residual gives a sum"), out))
}

fn forward_impl(
    x: &Tensor,
    residual: Option<&Tensor>,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f32,
    strategy: RowStrategy,
) -> Result<(Option<Tensor>, LayerNormOutput)> {
    let (p, rows, d) = params(x, gamma, eps)?;
    beta.expect("layernorm beta", &[d], DType::F32)?;
    let gpu = x.gpu();
    let y = Tensor::empty(gpu, x.shape(), DType::F32)?;
    let mean = Tensor::empty(gpu, &[rows], DType::F32)?;
    let rstd = Tensor::empty(gpu, &[rows], DType::F32)?;
    // Without a residual its bindings are not touched: the input stands in for it and a
    // scratch float for the sum.
    let sum = match residual {
        Some(_) => Tensor::empty(gpu, x.shape(), DType::F32)?,
        None => Tensor::empty(gpu, &[4], DType::F32)?,
    };
    let res = residual.unwrap_or(x);
    let switch = ("HAS_RESIDUAL", residual.is_some() as u32 as f64);
    match strategy {
        RowStrategy::Workgroup => gpu.dispatch(&Dispatch {
            shader: &LAYERNORM,
            entry: "layernorm_forward",
            defines: &[],
            overrides: &[("WG", row_workgroup(d, 32, 256) as f64), switch],
            params: bytemuck::bytes_of(&p),
            buffers: &[x, gamma, beta, &y, &mean, &rstd, res, &sum],
            textures: &[],
            workgroups: gpu.grid_for(rows as u64, 1)?,
        })?,
        RowStrategy::PerInvocation => {
            check_vec4(d)?;
            let buffers = [&mean, &rstd, x, gamma, beta, &y, res, &sum];
            let bytes = bytemuck::bytes_of(&p);
            dispatch_1d(
                &LAYERNORM,
                "layernorm_forward_rows",
                ROWS_WG,
                &[switch],
                bytes,
                &buffers,
                rows as u64,
            )?
        }
    }
    Ok((residual.map(|_| sum), LayerNormOutput { y, mean, rstd }))
}

/// Returns dx and writes (or with `accumulate` adds) dgamma and dbeta into the given tensors.
#[allow(clippy::too_many_arguments)]
pub fn layernorm_backward_into(
    x: &Tensor,
    gamma: &Tensor,
    dy: &Tensor,
    saved: &LayerNormOutput,
    dgamma: &Tensor,
    dbeta: &Tensor,
    accumulate: bool,
) -> Result<Tensor> {
    let strategy = RowStrategy::choose(x.gpu(), gamma.numel());
    layernorm_backward_into_with(x, gamma, dy, saved, dgamma, dbeta, accumulate, strategy)
}

/// [`layernorm_backward_into`] with an explicit row strategy.
#[allow(clippy::too_many_arguments)]
pub fn layernorm_backward_into_with(
    x: &Tensor,
    gamma: &Tensor,
    dy: &Tensor,
    saved: &LayerNormOutput,
    dgamma: &Tensor,
    dbeta: &Tensor,
    accumulate: bool,
    strategy: RowStrategy,
) -> Result<Tensor> {
    let (p, rows, d) = params(x, gamma, 0.0)?;
    if dy.shape() != x.shape() {
        bail!(
            "layernorm backward: dy {:?} must match x {:?}",
            dy.shape(),
            x.shape()
        );
    }
    saved.mean.expect("layernorm mean", &[rows], DType::F32)?;
    saved.rstd.expect("layernorm rstd", &[rows], DType::F32)?;
    dgamma.expect("layernorm dgamma", &[d], DType::F32)?;
    dbeta.expect("layernorm dbeta", &[d], DType::F32)?;
    let gpu = x.gpu();
    let dx = Tensor::empty(gpu, x.shape(), DType::F32)?;
    match strategy {
        RowStrategy::Workgroup => gpu.dispatch(&Dispatch {
            shader: &LAYERNORM,
            entry: "layernorm_backward_input",
            defines: &[],
            overrides: &[("WG", row_workgroup(d, 32, 256) as f64)],
            params: bytemuck::bytes_of(&p),
            buffers: &[x, gamma, &saved.mean, &saved.rstd, dy, &dx],
            textures: &[],
            workgroups: gpu.grid_for(rows as u64, 1)?,
        })?,
        RowStrategy::PerInvocation => {
            check_vec4(d)?;
            let buffers = [&saved.mean, &saved.rstd, x, gamma, dy, &dx];
            let entry = "layernorm_backward_input_rows";
            dispatch_1d(
                &LAYERNORM,
                entry,
                ROWS_WG,
                &[],
                bytemuck::bytes_of(&p),
                &buffers,
                rows as u64,
            )?
        }
    }
    let chunks = rows.div_ceil(CHUNK_ROWS).max(1);
    let pgamma = Tensor::empty(gpu, &[chunks, d], DType::F32)?;
    let pbeta = Tensor::empty(gpu, &[chunks, d], DType::F32)?;
    gpu.dispatch(&Dispatch {
        shader: &LAYERNORM,
        entry: "layernorm_backward_params",
        defines: &[],
        overrides: &[("WG", PARAM_WG as f64)],
        params: bytemuck::bytes_of(&p),
        buffers: &[x, &saved.mean, &saved.rstd, dy, &pgamma, &pbeta],
        textures: &[],
        workgroups: [
            (d as u32).div_ceil(PARAM_WG),
            to_u32("layernorm chunks", chunks)?,
            1,
        ],
    })?;
    colsum_into(&pgamma, dgamma, accumulate)?;
    colsum_into(&pbeta, dbeta, accumulate)?;
    Ok(dx)
}

/// All three gradients of LayerNorm as new tensors.
pub fn layernorm_backward(
    x: &Tensor,
    gamma: &Tensor,
    dy: &Tensor,
    saved: &LayerNormOutput,
) -> Result<LayerNormGrads> {
    let d = gamma.numel();
    let dgamma = Tensor::empty(x.gpu(), &[d], DType::F32)?;
    let dbeta = Tensor::empty(x.gpu(), &[d], DType::F32)?;
    let dx = layernorm_backward_into(x, gamma, dy, saved, &dgamma, &dbeta, false)?;
    Ok(LayerNormGrads { dx, dgamma, dbeta })
}
