//! Launchers for `shaders/activation.wgsl`: GELU (erf form), tanh, sigmoid and backwards.

use anyhow::Result;
use bytemuck::{Pod, Zeroable};

use super::{dispatch_1d, ensure_f32, ensure_same_len, to_u32};
pub use crate::config::Activation;
use crate::gpu::Tensor;
use crate::shaders::ACTIVATION;

const WG: u32 = 256;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct Params {
    n: u32,
    _pad: [u32; 3],
}

fn launch(entry: &'static str, inputs: &[&Tensor]) -> Result<Tensor> {
    let x = inputs[0];
    let out = Tensor::empty(x.gpu(), x.shape(), x.dtype())?;
    let n = to_u32(entry, x.numel())?;
    let params = Params { n, _pad: [0; 3] };
    let mut buffers = inputs.to_vec();
    buffers.push(&out);
    let (entry, items) = match (n % 4, entry) {
        (0, "gelu") => ("gelu4", n / 4),
        (0, "gelu_backward") => ("gelu_backward4", n / 4),
        _ => (entry, n),
    };
    dispatch_1d(
        &ACTIVATION,
        entry,
        WG,
        &[],
        bytemuck::bytes_of(&params),
        &buffers,
        items as u64,
    )?;
    Ok(out)
}

impl Activation {
    /// `f(x)`.
    pub fn forward(self, x: &Tensor) -> Result<Tensor> {
        ensure_f32("activation", x)?;
        launch(
            match self {
                Activation::Gelu => "gelu",
                Activation::Tanh => "tanh_forward",
            },
            &[x],
        )
    }

    /// `dy * f'(x)`, from the forward input `x`.
    pub fn backward(self, x: &Tensor, dy: &Tensor) -> Result<Tensor> {
        ensure_same_len("activation backward", x, dy)?;
        launch(
            match self {
                Activation::Gelu => "gelu_backward",
                Activation::Tanh => "tanh_backward",
            },
            &[x, dy],
        )
    }
}

/// GELU, erf form.
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    Activation::Gelu.forward(x)
}

/// `dy * gelu'(x)`.
pub fn gelu_backward(x: &Tensor, dy: &Tensor) -> Result<Tensor> {
    Activation::Gelu.backward(x, dy)
}

/// `tanh(x)`.
pub fn tanh(x: &Tensor) -> Result<Tensor> {
    Activation::Tanh.forward(x)
}

/// `dy * (1 - tanh(x)^2)`.
pub fn tanh_backward(x: &Tensor, dy: &Tensor) -> Result<Tensor> {
    Activation::Tanh.backward(x, dy)
}

/// `1 / (1 + exp(-x))`.
pub fn sigmoid(x: &Tensor) -> Result<Tensor> {
    ensure_f32("sigmoid", x)?;
    launch("sigmoid", &[x])
}
