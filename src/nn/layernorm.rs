//! LayerNorm over views of gamma/beta and their gradients.

use anyhow::Result;

use crate::gpu::Tensor;
use crate::ops::layernorm::{
    LayerNormOutput, layernorm_backward_into, layernorm_forward, layernorm_forward_residual,
};

pub struct LayerNorm {
    pub gamma: Tensor,
    pub beta: Tensor,
    pub dgamma: Tensor,
    pub dbeta: Tensor,
    pub eps: f32,
}

impl LayerNorm {
    pub fn forward(&self, x: &Tensor) -> Result<LayerNormOutput> {
        layernorm_forward(x, &self.gamma, &self.beta, self.eps)
    }

    /// LayerNorm of `x + residual` in one kernel; returns the sum (the backward's input) too.
    pub fn forward_residual(
        &self,
        x: &Tensor,
        residual: &Tensor,
    ) -> Result<(Tensor, LayerNormOutput)> {
        layernorm_forward_residual(x, residual, &self.gamma, &self.beta, self.eps)
    }

    /// Adds dgamma and dbeta; returns dx.
    pub fn backward(&self, x: &Tensor, dy: &Tensor, saved: &LayerNormOutput) -> Result<Tensor> {
        layernorm_backward_into(x, &self.gamma, dy, saved, &self.dgamma, &self.dbeta, true)
    }
}
