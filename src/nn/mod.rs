//! Layers with explicit forward and backward passes (llm.c style): each forward returns
//! what its backward needs, each backward takes it and adds its parameter gradients into the
//! gradient views it was built with.

pub mod attention;
pub mod embeddings;
pub mod encoder_layer;
pub mod gate;
pub mod head;
pub mod layernorm;
pub mod linear;

use anyhow::Result;

use crate::gpu::Tensor;
use crate::ops::dropout::{dropout, site_seed};

/// Whether dropout is active, with which randomness, and whether a backward follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Dropout off, everything a backward needs kept (`taskgate dump`, gradient checks).
    Eval,
    /// Dropout off and no backward to follow (evaluation, prediction): attention runs as one
    /// fused kernel and keeps no probabilities.
    Infer,
    /// Dropout on, seeded by the model seed and the step.
    Train { seed: u64, step: u64 },
}

/// Identifies one dropout site of the network (different masks per site and step).
#[derive(Clone, Copy, Debug)]
pub struct Site(pub u64);

impl Mode {
    /// Applies dropout `p` at `site` (identity in eval mode or when `p` is 0). The same
    /// call on a gradient is the backward.
    pub fn dropout(self, x: &Tensor, p: f32, site: Site) -> Result<Tensor> {
        match self {
            Mode::Train { seed, step } if p > 0.0 => dropout(x, p, site_seed(seed, step, site.0)),
            _ => Ok(x.clone()),
        }
    }
}

/// A gradient destination for an input: write into the tensor, or add to it.
#[derive(Clone, Copy)]
pub enum GradInto<'a> {
    Write(&'a Tensor),
    Add(&'a Tensor),
}

impl<'a> GradInto<'a> {
    pub(crate) fn target(self) -> (&'a Tensor, bool) {
        match self {
            GradInto::Write(t) => (t, false),
            GradInto::Add(t) => (t, true),
        }
    }
}
