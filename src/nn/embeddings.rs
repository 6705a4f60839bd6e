//! BERT embeddings: word + position + token type, LayerNorm, dropout.

use anyhow::{Result, anyhow};

use super::device_batch::DeviceBatch;
use super::encoder::EncoderDims;
use super::layernorm::LayerNorm;
use super::params::{ArenaSet, Decay, Init, ParamBuilder, ParamRef};
use super::{Mode, Site};
use crate::gpu::Tensor;
use crate::ops::elementwise::{accumulate, add};
use crate::ops::embedding::{embedding_backward_into, embedding_forward};
use crate::ops::layernorm::LayerNormOutput;

pub struct Embeddings {
    pub word: ParamRef,
    pub position: ParamRef,
    pub token_type: ParamRef,
    pub norm: LayerNorm,
    pub dropout: f32,
}

/// What the backward needs.
pub struct EmbeddingsSaved {
    sum: Tensor,
    norm: LayerNormOutput,
}

/// The dropout site of the embeddings.
pub const SITE: Site = Site(0);

impl Embeddings {
    /// Declares the three tables and the LayerNorm under `pb`'s prefix (Hugging Face's
    /// `embeddings`).
    pub fn new(pb: &ParamBuilder, dims: &EncoderDims) -> Self {
        let h = dims.hidden;
        let table =
            |name: &str, rows: usize| pb.param(name, &[rows, h], Init::Normal(0.02), Decay::Yes);
        Self {
            word: table("word_embeddings.weight", dims.vocab_size),
            position: table("position_embeddings.weight", dims.max_positions),
            token_type: table("token_type_embeddings.weight", dims.type_vocab_size),
            norm: LayerNorm::new(&pb.pp("LayerNorm"), h, dims.layer_norm_eps as f32),
            dropout: dims.dropout,
        }
    }

    /// `[B * T, d]` embeddings of the batch.
    pub fn forward(
        &self,
        w: &ArenaSet,
        batch: &DeviceBatch,
        mode: Mode,
    ) -> Result<(Tensor, EmbeddingsSaved)> {
        let words = embedding_forward(&batch.ids, &w.get(&self.word)?)?;
        let positions = embedding_forward(&batch.positions, &w.get(&self.position)?)?;
        let sum = add(&words, &positions)?;
        accumulate(
            &sum,
            &embedding_forward(&batch.type_ids, &w.get(&self.token_type)?)?,
            1.0,
        )?;
        let norm = self.norm.forward(w, &sum)?;
        let out = mode.dropout(&norm.y, self.dropout, SITE)?;
        Ok((out, EmbeddingsSaved { sum, norm }))
    }

    /// Adds the gradients of the three tables and of the LayerNorm into `g`.
    pub fn backward(
        &self,
        w: &ArenaSet,
        g: &ArenaSet,
        dout: &Tensor,
        saved: &EmbeddingsSaved,
        batch: &DeviceBatch,
        mode: Mode,
    ) -> Result<()> {
        let indices = batch
            .indices
            .as_ref()
            .ok_or_else(|| anyhow!("the batch was not prepared for a backward pass"))?;
        let dnorm = mode.dropout(dout, self.dropout, SITE)?;
        let dsum = self.norm.backward(w, g, &saved.sum, &dnorm, &saved.norm)?;
        embedding_backward_into(&indices.word, &dsum, &g.get(&self.word)?)?;
        embedding_backward_into(&indices.position, &dsum, &g.get(&self.position)?)?;
        embedding_backward_into(&indices.token_type, &dsum, &g.get(&self.token_type)?)
    }
}
