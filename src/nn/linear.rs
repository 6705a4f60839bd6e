//! `y = x W^T + b` with W stored `[out, in]` as Hugging Face does; backward adds dW and db.

use anyhow::Result;

use super::GradInto;
use super::params::{ArenaSet, Decay, Init, ParamBuilder, ParamRef};
use crate::gpu::{DType, Tensor};
use crate::ops::matmul::{Kernel, Matmul, matmul, matmul_backward_into, matmul_bias_gelu};

/// A linear layer: `weight` `[out, in]` and `bias` `[out]`.
pub struct Linear {
    pub weight: ParamRef,
    pub bias: ParamRef,
    pub in_features: usize,
    pub out_features: usize,
}

impl Linear {
    /// Declares `weight` (N(0, 0.02)) and `bias` (zeros) under `pb`'s prefix.
    pub fn new(pb: &ParamBuilder, in_features: usize, out_features: usize) -> Self {
        Self {
            weight: pb.param(
                "weight",
                &[out_features, in_features],
                Init::Normal(0.02),
                Decay::Yes,
            ),
            bias: pb.param("bias", &[out_features], Init::Zeros, Decay::No),
            in_features,
            out_features,
        }
    }

    /// Q, K and V (`parts`, each `[d, d]` under its own prefix) as one `[3d, d]` layer:
    /// declared per part (weight, then bias, as Hugging Face lists them), each after the first
    /// packed behind its predecessor so that one view binds them all.
    pub fn packed(parts: &[ParamBuilder], d: usize) -> Self {
        let mut weights = Vec::new();
        let mut biases = Vec::new();
        for (k, pb) in parts.iter().enumerate() {
            let declare = |name: &str, shape: &[usize], init: Init, decay: Decay| {
                if k == 0 {
                    pb.param(name, shape, init, decay)
                } else {
                    pb.packed_after(name, shape, init, decay)
                }
            };
            weights.push(declare("weight", &[d, d], Init::Normal(0.02), Decay::Yes));
            biases.push(declare("bias", &[d], Init::Zeros, Decay::No));
        }
        let n = parts.len();
        Self {
            weight: ParamRef::run(&weights, &[n * d, d]),
            bias: ParamRef::run(&biases, &[n * d]),
            in_features: d,
            out_features: n * d,
        }
    }

    fn spec(&self, rows: usize) -> Matmul {
        Matmul::new(1, rows, self.out_features, self.in_features, false, true)
    }

    /// `x` `[rows, in]` to `[rows, out]`.
    pub fn forward(&self, w: &ArenaSet, x: &Tensor) -> Result<Tensor> {
        let rows = x.numel() / self.in_features;
        let x2 = x.reshape(&[rows, self.in_features])?;
        matmul(
            &x2,
            &w.get(&self.weight)?,
            Some(&w.get(&self.bias)?),
            &self.spec(rows),
        )
    }

    /// `(x W^T + b, gelu(x W^T + b))` from one kernel (the fused bias + GELU epilogue).
    pub fn forward_gelu(&self, w: &ArenaSet, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let rows = x.numel() / self.in_features;
        let x2 = x.reshape(&[rows, self.in_features])?;
        matmul_bias_gelu(
            &x2,
            &w.get(&self.weight)?,
            &w.get(&self.bias)?,
            &self.spec(rows),
            Kernel::Auto,
        )
    }

    /// Adds dW and db into `g`; writes or adds dx into `dx` when given.
    pub fn backward(
        &self,
        w: &ArenaSet,
        g: &ArenaSet,
        x: &Tensor,
        dy: &Tensor,
        dx: Option<GradInto<'_>>,
    ) -> Result<()> {
        let rows = x.numel() / self.in_features;
        matmul_backward_into(
            x,
            &w.get(&self.weight)?,
            dy,
            &self.spec(rows),
            1.0,
            dx.map(GradInto::target),
            Some((&g.get(&self.weight)?, true)),
            Some((&g.get(&self.bias)?, true)),
        )
    }

    /// Zeroes the gradient of bias elements `start..start + len` in `g`: attention's key
    /// bias, whose gradient is zero in exact arithmetic (softmax ignores a constant added to
    /// every score of a row), so that Adam does not amplify the rounding noise a computed
    /// sum leaves there into updates that differ between batch splits, GPUs and ranks.
    pub fn zero_bias_grad(&self, g: &ArenaSet, start: usize, len: usize) -> Result<()> {
        g.get(&self.bias)?.view(start, &[len])?.fill_zero();
        Ok(())
    }

    /// Adds dW and db into `g` and returns a new dx.
    pub fn backward_new(
        &self,
        w: &ArenaSet,
        g: &ArenaSet,
        x: &Tensor,
        dy: &Tensor,
    ) -> Result<Tensor> {
        let dx = Tensor::empty(x.gpu(), x.shape(), DType::F32)?;
        self.backward(w, g, x, dy, Some(GradInto::Write(&dx)))?;
        Ok(dx)
    }
}
