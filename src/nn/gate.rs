//! The task gate on the encoder output: `y = sigmoid(h W_g^T + b_g) * h`, with one gate per
//! token (`scalar`), one per feature (`vector`), or none.

use anyhow::Result;

use super::GradInto;
use super::linear::Linear;
use super::params::{ArenaSet, ParamBuilder};
use crate::config::GateMode;
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
    /// A gate of `mode` over width `d`, declared under `pb`'s prefix (`weight`, `bias`).
    pub fn new(pb: &ParamBuilder, mode: GateMode, d: usize) -> Self {
        match mode {
            GateMode::None => Gate::None,
            GateMode::Scalar => Gate::Scalar(Linear::new(pb, d, 1)),
            GateMode::Vector => Gate::Vector(Linear::new(pb, d, d)),
        }
    }

    fn parts(&self) -> Option<(&Linear, GateShape)> {
        match self {
            Gate::None => None,
            Gate::Scalar(l) => Some((l, GateShape::Scalar)),
            Gate::Vector(l) => Some((l, GateShape::Vector)),
        }
    }

    /// The gated encoder output `[B*T, d]`.
    pub fn forward(&self, w: &ArenaSet, h: &Tensor) -> Result<(Tensor, GateSaved)> {
        match self.parts() {
            None => Ok((h.clone(), GateSaved { logits: None })),
            Some((linear, shape)) => {
                let logits = linear.forward(w, h)?;
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

    /// Adds the gate's parameter gradients into `g` and its contribution to `dh` (the
    /// gradient of the encoder output).
    pub fn backward(
        &self,
        w: &ArenaSet,
        g: &ArenaSet,
        h: &Tensor,
        dy: &Tensor,
        saved: &GateSaved,
        dh: &Tensor,
    ) -> Result<()> {
        match (self.parts(), &saved.logits) {
            (Some((linear, shape)), Some(logits)) => {
                gate_backward_input_into(logits, dy, shape, dh, true)?;
                let dlogits = gate_backward_logits(logits, h, dy, shape)?;
                linear.backward(w, g, h, &dlogits, Some(GradInto::Add(dh)))
            }
            _ => accumulate(dh, dy, 1.0),
        }
    }
}
