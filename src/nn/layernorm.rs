//! LayerNorm over the last dimension: `weight` (gamma, ones) and `bias` (beta, zeros).

use anyhow::Result;

use super::params::{ArenaSet, Decay, Init, ParamBuilder, ParamRef};
use crate::gpu::Tensor;
use crate::ops::layernorm::{
    LayerNormOutput, layernorm_backward_into, layernorm_forward, layernorm_forward_residual,
};

pub struct LayerNorm {
    pub gamma: ParamRef,
    pub beta: ParamRef,
    pub eps: f32,
}

impl LayerNorm {
    /// Declares `weight` and `bias` of width `d` under `pb`'s prefix.
    pub fn new(pb: &ParamBuilder, d: usize, eps: f32) -> Self {
        Self {
            gamma: pb.param("weight", &[d], Init::Ones, Decay::No),
            beta: pb.param("bias", &[d], Init::Zeros, Decay::No),
            eps,
        }
    }

    pub fn forward(&self, w: &ArenaSet, x: &Tensor) -> Result<LayerNormOutput> {
        layernorm_forward(x, &w.get(&self.gamma)?, &w.get(&self.beta)?, self.eps)
    }

    /// LayerNorm of `x + residual` in one kernel; returns the sum (the backward's input) too.
    pub fn forward_residual(
        &self,
        w: &ArenaSet,
        x: &Tensor,
        residual: &Tensor,
    ) -> Result<(Tensor, LayerNormOutput)> {
        layernorm_forward_residual(
            x,
            residual,
            &w.get(&self.gamma)?,
            &w.get(&self.beta)?,
            self.eps,
        )
    }

    /// Adds dgamma and dbeta into `g`; returns dx.
    pub fn backward(
        &self,
        w: &ArenaSet,
        g: &ArenaSet,
        x: &Tensor,
        dy: &Tensor,
        saved: &LayerNormOutput,
    ) -> Result<Tensor> {
        layernorm_backward_into(
            x,
            &w.get(&self.gamma)?,
            dy,
            saved,
            &g.get(&self.gamma)?,
            &g.get(&self.beta)?,
            true,
        )
    }
}
