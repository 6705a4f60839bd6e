//! Launchers for `shaders/adamw.wgsl`: the clip coefficient from the squared gradient norm,
//! and the AdamW update of one parameter group of a flat buffer. No host round trip: the
//! update reads the coefficient (and the skip flag for a non-finite norm) on the GPU.

use std::ops::Range;

use anyhow::{Result, bail};
use bytemuck::{Pod, Zeroable};

use super::{dispatch_1d, ensure_f32, reduce::sum_squares, to_u32};
use crate::gpu::{DType, Dispatch, Tensor};
use crate::shaders::ADAMW;

const WG: u32 = 256;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct Params {
    n: u32,
    offset: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    bc1: f32,
    bc2: f32,
    max_norm: f32,
    /// Where element `offset` of the range sits in `m` and `v`.
    moment_offset: u32,
    _pad: u32,
}

/// AdamW hyper-parameters (PyTorch's defaults).
#[derive(Clone, Copy, Debug)]
pub struct AdamW {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
}

impl Default for AdamW {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

fn empty_params() -> Params {
    Params::zeroed()
}

/// From `sumsq` (one element: the summed squared gradients) computes `[norm, coef, skip]`
/// with `coef = min(1, max_norm / (norm + 1e-6))` (1 when `max_norm <= 0`) and `skip = 1`
/// when the norm is not finite.
pub fn clip_coefficient(sumsq: &Tensor, max_norm: f32) -> Result<Tensor> {
    sumsq.expect_len("clip: squared norm", 1, DType::F32)?;
    let gpu = sumsq.gpu();
    let clip = Tensor::empty(gpu, &[3], DType::F32)?;
    let params = Params {
        max_norm,
        ..empty_params()
    };
    gpu.dispatch(&Dispatch {
        shader: &ADAMW,
        entry: "clip_coefficient",
        defines: &[],
        overrides: &[],
        params: bytemuck::bytes_of(&params),
        buffers: &[sumsq, &clip],
        textures: &[],
        workgroups: [1, 1, 1],
    })?;
    Ok(clip)
}

/// The clip tensor for a flat gradient buffer: sum of squares, then [`clip_coefficient`].
pub fn grad_norm_clip(grads: &Tensor, max_norm: f32) -> Result<Tensor> {
    clip_coefficient(&sum_squares(grads)?, max_norm)
}

/// One AdamW step (`step` counts from 1) on `range` of the flat buffers `param` and `grad`,
/// scaling the gradient by the coefficient in `clip` (see [`clip_coefficient`]). The moments
/// `m` and `v` hold element `range.start`'s at `moment_start`: `range.start` when they are laid
/// out like the parameters, less when they hold only the updated ones (the optimizer keeps no
/// state for frozen parameters).
#[allow(clippy::too_many_arguments)]
pub fn adamw_step(
    param: &Tensor,
    grad: &Tensor,
    m: &Tensor,
    v: &Tensor,
    clip: &Tensor,
    hp: &AdamW,
    step: u64,
    range: Range<usize>,
    moment_start: usize,
) -> Result<()> {
    for (what, t) in [("param", param), ("grad", grad), ("m", m), ("v", v)] {
        ensure_f32(what, t)?;
    }
    if grad.numel() != param.numel() {
        bail!(
            "adamw: grad {:?} differs from param {:?}",
            grad.shape(),
            param.shape()
        );
    }
    if m.numel() != v.numel() {
        bail!("adamw: m {:?} differs from v {:?}", m.shape(), v.shape());
    }
    clip.expect_len("adamw: clip", 3, DType::F32)?;
    if range.start > range.end || range.end > param.numel() {
        bail!(
            "adamw: range {range:?} outside {} parameters",
            param.numel()
        );
    }
    let moment_end = moment_start.saturating_add(range.end - range.start);
    if moment_end > m.numel() {
        bail!(
            "adamw: moments {moment_start}..{moment_end} outside {} moments",
            m.numel()
        );
    }
    if step == 0 {
        bail!("adamw: steps count from 1");
    }
    let n = range.end - range.start;
    let bc = |beta: f32| (1.0 - (beta as f64).powf(step as f64)) as f32;
    let params = Params {
        n: to_u32("adamw elements", n)?,
        offset: to_u32("adamw offset", range.start)?,
        lr: hp.lr,
        beta1: hp.beta1,
        beta2: hp.beta2,
        eps: hp.eps,
        weight_decay: hp.weight_decay,
        bc1: bc(hp.beta1),
        bc2: bc(hp.beta2),
        max_norm: 0.0,
        moment_offset: to_u32("adamw moment offset", moment_start)?,
        _pad: 0,
    };
    let vec4 =
        n.is_multiple_of(4) && range.start.is_multiple_of(4) && moment_start.is_multiple_of(4);
    let (entry, items) = if vec4 {
        ("adamw4", n / 4)
    } else {
        ("adamw", n)
    };
    dispatch_1d(
        &ADAMW,
        entry,
        WG,
        &[],
        bytemuck::bytes_of(&params),
        &[clip, param, grad, m, v],
        items as u64,
    )
}
