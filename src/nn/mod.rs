//! Layers with explicit forward and backward passes (llm.c style): each layer declares its
//! parameters once ([`params::ParamBuilder`]), each forward reads them from the parameter
//! arenas and returns what its backward needs, and each backward takes it and adds its
//! parameter gradients into the gradient set it is given. [`DeviceBatch`] is a batch as the
//! layers read it.

pub mod attention;
pub mod decoder;
pub mod decoder_layer;
pub mod device_batch;
pub mod embeddings;
pub mod encoder;
pub mod encoder_layer;
pub mod gate;
pub mod head;
pub mod layernorm;
pub mod linear;
pub mod params;
pub mod tied_output;

pub use device_batch::DeviceBatch;
pub use encoder::{Encoder, EncoderDims};
pub use params::{ArenaSet, ParamBuilder};

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
