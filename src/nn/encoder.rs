//! The BERT encoder (embeddings and post-LN layers) and its resolved dimensions.

use anyhow::Result;

use super::Mode;
use super::device_batch::DeviceBatch;
use super::embeddings::{Embeddings, EmbeddingsSaved};
use super::encoder_layer::{EncoderLayer, LayerSaved};
use super::params::{ArenaSet, ParamBuilder};
use crate::gpu::Tensor;

/// Encoder dimensions and regularization, fully resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct EncoderDims {
    pub vocab_size: usize,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub max_positions: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    pub dropout: f32,
    pub attention_dropout: f32,
    pub seed: u64,
    /// Longest tokenized input (<= max_positions).
    pub max_length: usize,
}

/// The shared encoder: embeddings, then the layers.
pub struct Encoder {
    pub dims: EncoderDims,
    pub embeddings: Embeddings,
    pub layers: Vec<EncoderLayer>,
}

/// What the encoder's backward needs.
pub struct EncoderSaved {
    embeddings: EmbeddingsSaved,
    layers: Vec<LayerSaved>,
}

/// Name prefix of encoder layer `i` (as Hugging Face's BertModel).
pub fn layer_prefix(i: usize) -> String {
    format!("encoder.layer.{i}")
}

/// The encoder stage a parameter belongs to, counted from the bottom: 0 for the embeddings,
/// `i + 1` for layer `i`; `None` for parameters outside the encoder. The backward reaches a
/// stage only when it or a stage below it trains ([`Encoder::backward`]'s `frozen_below`).
pub fn encoder_stage(name: &str) -> Option<usize> {
    if name.starts_with("embeddings.") {
        return Some(0);
    }
    let rest = name.strip_prefix("encoder.layer.")?;
    let (index, _) = rest.split_once('.')?;
    index.parse::<usize>().ok().map(|i| i + 1)
}

/// What an encoder backward reads: the parameters, the gradients it adds into, the forward's
/// saved activations, the batch, the mode and the frozen stages (see
/// [`Encoder::backward`]).
pub type StageArgs<'a> = (
    &'a ArenaSet,
    &'a ArenaSet,
    &'a EncoderSaved,
    &'a DeviceBatch,
    Mode,
    usize,
);

impl Encoder {
    /// Declares every encoder parameter under `pb` with Hugging Face BertModel's names
    /// (`embeddings.*`, `encoder.layer.<i>.*`).
    pub fn new(pb: &ParamBuilder, dims: &EncoderDims) -> Self {
        Self {
            dims: dims.clone(),
            embeddings: Embeddings::new(&pb.pp("embeddings"), dims),
            layers: (0..dims.layers)
                .map(|i| EncoderLayer::new(&pb.pp(layer_prefix(i)), dims, i))
                .collect(),
        }
    }

    /// The encoder output `[B*T, d]`.
    pub fn forward(
        &self,
        w: &ArenaSet,
        batch: &DeviceBatch,
        mode: Mode,
    ) -> Result<(Tensor, EncoderSaved)> {
        let (mut x, embeddings) = self.embeddings.forward(w, batch, mode)?;
        let mut layers = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            let (out, saved) = layer.forward(w, &x, batch, mode)?;
            layers.push(saved);
            x = out;
        }
        Ok((x, EncoderSaved { embeddings, layers }))
    }

    /// Back-propagates `dhidden` (the gradient of the encoder output) through the layers
    /// and the embeddings, adding each parameter's gradient into `g`, down to stage
    /// `frozen_below` (see [`encoder_stage`]): the stages below it are frozen, so the
    /// backward stops above them (0: every stage; `layers + 1`: none).
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        w: &ArenaSet,
        g: &ArenaSet,
        dhidden: Tensor,
        saved: &EncoderSaved,
        batch: &DeviceBatch,
        mode: Mode,
        frozen_below: usize,
    ) -> Result<()> {
        let mut no_report = |_| Ok(());
        let stages = (w, g, saved, batch, mode, frozen_below);
        self.backward_reporting(dhidden, stages, &mut no_report)
    }

    /// [`Encoder::backward`], calling `done(stage)` (see [`encoder_stage`]) once each stage's
    /// parameter gradients are recorded, top stage first: a data-parallel rank starts
    /// reading a stage's gradients back while the stages below still run.
    pub fn backward_reporting(
        &self,
        dhidden: Tensor,
        (w, g, saved, batch, mode, frozen_below): StageArgs<'_>,
        done: &mut dyn FnMut(usize) -> Result<()>,
    ) -> Result<()> {
        let mut grad = dhidden;
        for (i, (layer, s)) in self.layers.iter().zip(&saved.layers).enumerate().rev() {
            if i + 1 < frozen_below {
                return Ok(());
            }
            grad = layer.backward(w, g, &grad, s, batch, mode)?;
            done(i + 1)?;
        }
        if frozen_below > 0 {
            return Ok(());
        }
        self.embeddings
            .backward(w, g, &grad, &saved.embeddings, batch, mode)?;
        done(0)
    }
}
