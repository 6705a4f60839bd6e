//! A host [`Batch`] uploaded for the model: token, type and position ids, the additive
//! attention mask, the pooling weights, and (for training) the embedding gradient indices.

use anyhow::{Result, bail};

use super::decoder::DecoderInputs;
use super::encoder::EncoderDims;
use crate::data::Batch;
use crate::data::TaskTargets;
use crate::gpu::{Gpu, Tensor};
use crate::ops::embedding::EmbeddingGradIndex;

/// Added to the attention scores of padding keys (as Hugging Face: the most negative f32).
pub const MASKED: f32 = f32::MIN;

/// Host-built indices for the three embedding backwards.
pub struct EmbeddingIndices {
    pub word: EmbeddingGradIndex,
    pub position: EmbeddingGradIndex,
    pub token_type: EmbeddingGradIndex,
}

/// A batch on the GPU.
pub struct DeviceBatch {
    pub batch: usize,
    pub seq: usize,
    /// `[B * T]` u32 ids.
    pub ids: Tensor,
    pub type_ids: Tensor,
    pub positions: Tensor,
    /// `[B, T]`: 0 for tokens, [`MASKED`] for padding.
    pub mask: Tensor,
    /// `[B, T]` pooling weights: one-hot on the first token.
    pub cls_weights: Tensor,
    /// `[B, T]` pooling weights: attention mask / tokens per row.
    pub mean_weights: Tensor,
    /// Present when built for training.
    pub indices: Option<EmbeddingIndices>,
    /// Per task: the teacher-forced decoder inputs of a generation task whose targets have a
    /// labelled row (`None` otherwise).
    pub decoders: Vec<Option<DecoderInputs>>,
}

impl DeviceBatch {
    /// Uploads `batch`, checking ids against the encoder's sizes.
    pub fn new(gpu: &Gpu, batch: &Batch, dims: &EncoderDims, for_backward: bool) -> Result<Self> {
        let (b, t) = (batch.batch, batch.seq);
        if t > dims.max_positions {
            bail!(
                "a batch of {t} tokens per row exceeds max_positions ({})",
                dims.max_positions
            );
        }
        if let Some(&id) = batch.ids.iter().find(|&&id| id as usize >= dims.vocab_size) {
            bail!(
                "token id {id} is outside the encoder's vocabulary of {} (tokenizer and model do \
                 not match)",
                dims.vocab_size
            );
        }
        if let Some(&id) = batch
            .type_ids
            .iter()
            .find(|&&id| id as usize >= dims.type_vocab_size)
        {
            bail!(
                "token type id {id} is outside type_vocab_size ({})",
                dims.type_vocab_size
            );
        }
        let positions: Vec<u32> = (0..b * t).map(|i| (i % t) as u32).collect();
        let mask: Vec<f32> = batch
            .attention
            .iter()
            .map(|&a| if a != 0 { 0.0 } else { MASKED })
            .collect();
        let mut cls = vec![0.0f32; b * t];
        let mut mean = vec![0.0f32; b * t];
        for row in 0..b {
            cls[row * t] = 1.0;
            let count = batch.attention[row * t..(row + 1) * t]
                .iter()
                .filter(|&&a| a != 0)
                .count();
            for pos in 0..t {
                if batch.attention[row * t + pos] != 0 {
                    mean[row * t + pos] = 1.0 / count as f32;
                }
            }
        }
        let indices = if for_backward {
            Some(EmbeddingIndices {
                word: EmbeddingGradIndex::skipping(
                    gpu,
                    &batch.ids,
                    dims.vocab_size,
                    Some(batch.pad_id),
                )?,
                position: EmbeddingGradIndex::new(gpu, &positions, dims.max_positions)?,
                token_type: EmbeddingGradIndex::new(gpu, &batch.type_ids, dims.type_vocab_size)?,
            })
        } else {
            None
        };
        let decoders = batch
            .targets
            .iter()
            .map(|targets| match targets {
                TaskTargets::Sequences { inputs, .. } if targets.any_labelled() => {
                    Ok(Some(DecoderInputs::new(
                        gpu,
                        inputs,
                        b,
                        dims.vocab_size,
                        batch.pad_id,
                        for_backward,
                    )?))
                }
                _ => Ok(None),
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            batch: b,
            seq: t,
            decoders,
            ids: Tensor::from_slice(gpu, &batch.ids, &[b * t])?,
            type_ids: Tensor::from_slice(gpu, &batch.type_ids, &[b * t])?,
            positions: Tensor::from_slice(gpu, &positions, &[b * t])?,
            mask: Tensor::from_slice(gpu, &mask, &[b, t])?,
            cls_weights: Tensor::from_slice(gpu, &cls, &[b, t])?,
            mean_weights: Tensor::from_slice(gpu, &mean, &[b, t])?,
            indices,
        })
    }

    /// Rows of the flattened `[B * T, d]` activations.
    pub fn tokens(&self) -> usize {
        self.batch * self.seq
    }
}
