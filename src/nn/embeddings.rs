//! BERT embeddings: word + position + token type, LayerNorm, dropout.

use anyhow::{Result, anyhow};

use super::layernorm::LayerNorm;
use super::{Mode, Site};
use crate::gpu::Tensor;
use crate::model::device_batch::DeviceBatch;
use crate::ops::elementwise::{accumulate, add};
use crate::ops::embedding::{embedding_backward_into, embedding_forward};
use crate::ops::layernorm::LayerNormOutput;

pub struct Embeddings {
    pub word: Tensor,
    pub position: Tensor,
    pub token_type: Tensor,
    pub dword: Tensor,
    pub dposition: Tensor,
    pub dtoken_type: Tensor,
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
    /// `[B * T, d]` embeddings of the batch.
    pub fn forward(&self, batch: &DeviceBatch, mode: Mode) -> Result<(Tensor, EmbeddingsSaved)> {
        let words = embedding_forward(&batch.ids, &self.word)?;
        let positions = embedding_forward(&batch.positions, &self.position)?;
        let sum = add(&words, &positions)?;
        accumulate(
            &sum,
            &embedding_forward(&batch.type_ids, &self.token_type)?,
            1.0,
        )?;
        let norm = self.norm.forward(&sum)?;
        let out = mode.dropout(&norm.y, self.dropout, SITE)?;
        Ok((out, EmbeddingsSaved { sum, norm }))
    }

    /// Adds the gradients of the three tables and of the LayerNorm.
    pub fn backward(
        &self,
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
        let dsum = self.norm.backward(&saved.sum, &dnorm, &saved.norm)?;
        embedding_backward_into(&indices.word, &dsum, &self.dword)?;
        embedding_backward_into(&indices.position, &dsum, &self.dposition)?;
        embedding_backward_into(&indices.token_type, &dsum, &self.dtoken_type)
    }
}
