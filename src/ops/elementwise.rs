//! Launchers for `shaders/elementwise.wgsl`: axpby (add, residual), scale, accumulate, fill.

use anyhow::Result;
use bytemuck::{Pod, Zeroable};

use super::{dispatch_1d, ensure_f32, ensure_same_len, to_u32};
use crate::gpu::Tensor;
use crate::shaders::ELEMENTWISE;

const WG: u32 = 256;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct Params {
    n: u32,
    alpha: f32,
    beta: f32,
    index: u32,
}

fn launch(
    entry: &'static str,
    out: &Tensor,
    inputs: &[&Tensor],
    alpha: f32,
    beta: f32,
) -> Result<()> {
    launch_with(entry, out, inputs, alpha, beta, None)
}

fn launch_with(
    entry: &'static str,
    out: &Tensor,
    inputs: &[&Tensor],
    alpha: f32,
    beta: f32,
    weight: Option<(&Tensor, usize)>,
) -> Result<()> {
    let n = to_u32(entry, out.numel())?;
    let params = Params {
        n,
        alpha,
        beta,
        index: to_u32(entry, weight.map_or(0, |w| w.1))?,
    };
    let mut buffers: Vec<&Tensor> = inputs.to_vec();
    buffers.push(out);
    buffers.extend(weight.map(|w| w.0));
    // Whole vec4s when the length allows: a quarter of the invocations and loads.
    let (entry, items) = match (n % 4, entry) {
        (0, "axpby") => ("axpby4", n / 4),
        (0, "scale") => ("scale4", n / 4),
        (0, "accumulate") => ("accumulate4", n / 4),
        (0, "fill") => ("fill4", n / 4),
        _ => (entry, n),
    };
    dispatch_1d(
        &ELEMENTWISE,
        entry,
        WG,
        &[],
        bytemuck::bytes_of(&params),
        &buffers,
        items as u64,
    )
}

/// `alpha * a + beta * b`, shaped like `a`.
pub fn axpby(alpha: f32, a: &Tensor, beta: f32, b: &Tensor) -> Result<Tensor> {
    ensure_same_len("axpby", a, b)?;
    let out = Tensor::empty(a.gpu(), a.shape(), a.dtype())?;
    launch("axpby", &out, &[a, b], alpha, beta)?;
    Ok(out)
}

/// `a + b` (also the residual connection).
pub fn add(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    axpby(1.0, a, 1.0, b)
}

/// `alpha * x`.
pub fn scale(x: &Tensor, alpha: f32) -> Result<Tensor> {
    ensure_f32("scale", x)?;
    let out = Tensor::empty(x.gpu(), x.shape(), x.dtype())?;
    launch("scale", &out, &[x], alpha, 0.0)?;
    Ok(out)
}

/// `out += alpha * x` in place.
pub fn accumulate(out: &Tensor, x: &Tensor, alpha: f32) -> Result<()> {
    ensure_same_len("accumulate", out, x)?;
    launch("accumulate", out, &[x], alpha, 0.0)
}

/// `out += (alpha * weights[index]) * x` in place: `weights` is a GPU tensor (the task
/// weights), read by the kernel, never by the host.
pub fn accumulate_weighted(
    out: &Tensor,
    x: &Tensor,
    alpha: f32,
    weights: &Tensor,
    index: usize,
) -> Result<()> {
    ensure_same_len("accumulate_weighted", out, x)?;
    ensure_f32("accumulate_weighted weights", weights)?;
    if index >= weights.numel() {
        anyhow::bail!(
            "accumulate_weighted: weight {index} of a tensor of {}",
            weights.numel()
        );
    }
    launch_with(
        "accumulate_weighted",
        out,
        &[x],
        alpha,
        0.0,
        Some((weights, index)),
    )
}

/// Sets every element of `out` to `value`.
pub fn fill(out: &Tensor, value: f32) -> Result<()> {
    ensure_f32("fill", out)?;
    launch("fill", out, &[], value, 0.0)
}
