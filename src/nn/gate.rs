//! The task gate on the encoder output: `y = sigmoid(h W_g^T + b_g) * h`, with one gate per
//! token (`scalar`), one per feature (`vector`), or none.

use anyhow::Result;

use super::GradInto;
use super::linear::Linear;
use crate::gpu::Tensor;
use crate::ops::activation::sigmoid;
use crate::ops::elementwise::accumulate;
use crate::ops::gate::{GateShape, gate_backward_input_into, gate_backward_logits, gate_forward};

pub enum Gate {
    None,
    /// `W_g`: `[1, d]`.
    Scalar(Linear),
    /// `W_g`: `[d, d]`.
    Vector(Linear),
}

/// The gate logits (absent without a gate).
pub struct GateSaved {
    logits: Option<Tensor>,
}

impl Gate {
    fn parts(&self) -> Option<(&Linear, GateShape)> {
        match self {
            Gate::None => None,
            Gate::Scalar(l) => Some((l, GateShape::Scalar)),
            Gate::Vector(l) => Some((l, GateShape::Vector)),
        }
    }

    /// The gated encoder output `[B*T, d]`.
    pub fn forward(&self, h: &Tensor) -> Result<(Tensor, GateSaved)> {
        match self.parts() {
            None => Ok((h.clone(), GateSaved { logits: None })),
            Some((linear, shape)) => {
                let logits = linear.forward(h)?;
                let y = gate_forward(&logits, h, shape)?;
                Ok((
                    y,
                    GateSaved {
                        logits: Some(logits),
                    },
                ))
            }
        }
    }

    /// The gate values `sigmoid(a)` (`[B*T, 1]` or `[B*T, d]`), for inspection.
    pub fn values(&self, saved: &GateSaved) -> Result<Option<Tensor>> {
        saved.logits.as_ref().map(sigmoid).transpose()
    }

    /// Adds the gate's parameter gradients and its contribution to `dh` (the gradient of the
    /// shared encoder output, which every task adds into).
    pub fn backward(&self, h: &Tensor, dy: &Tensor, saved: &GateSaved, dh: &Tensor) -> Result<()> {
        match (self.parts(), &saved.logits) {
            (Some((linear, shape)), Some(logits)) => {
                gate_backward_input_into(logits, dy, shape, dh, true)?;
                let dlogits = gate_backward_logits(logits, h, dy, shape)?;
                linear.backward(h, &dlogits, Some(GradInto::Add(dh)))
            }
            _ => accumulate(dh, dy, 1.0),
        }
    }
}
