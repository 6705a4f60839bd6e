//! A text-generation decoder over a task's gated encoder output (the memory):
//!
//!   x      = LN(E[ids] + P[0..T])                 E: the shared word embeddings (tied)
//!   x      = DecoderLayer_l(x, memory)  for each layer (causal self-attn, cross-attn, FFN)
//!   logits = x E^T                                the tied output projection, no bias
//!
//! trained by teacher forcing (`forward`, then `nn::tied_output`'s fused loss and backward,
//! then `backward`, which returns the memory's gradient). Parameters are declared with
//! Hugging Face's BertLayer names under the decoder's prefix (`embeddings.position_embeddings`,
//! `embeddings.LayerNorm`, `layer.<n>.{attention, crossattention, intermediate, output}`);
//! the word embeddings are the encoder's.

use anyhow::{Result, bail};

use super::decoder_layer::{DecoderLayer, DecoderLayerDims, DecoderLayerSaved, DecoderShape};
use super::layernorm::LayerNorm;
use super::params::{ArenaSet, Decay, Init, ParamBuilder, ParamRef};
use super::tied_output::TiedOutput;
use super::{Mode, Site};
use crate::gpu::{DType, Gpu, Tensor};
use crate::ops::elementwise::add;
use crate::ops::embedding::{EmbeddingGradIndex, embedding_backward_into, embedding_forward};
use crate::ops::layernorm::LayerNormOutput;

/// A decoder's sizes, fully resolved.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DecoderDims {
    pub vocab: usize,
    pub layers: usize,
    pub max_length: usize,
    pub layer: DecoderLayerDims,
}

pub struct Decoder {
    pub dims: DecoderDims,
    pub position: ParamRef,
    pub norm: LayerNorm,
    pub layers: Vec<DecoderLayer>,
    pub output: TiedOutput,
    /// Dropout site of the embeddings; the layers' follow.
    pub site: u64,
}

/// Decoder input ids on the GPU: `batch` rows of `seq` positions.
pub struct DecoderInputs {
    pub batch: usize,
    pub seq: usize,
    /// `[B * T]` u32 token ids.
    pub ids: Tensor,
    /// `[B * T]` u32 positions `0..T` per row.
    pub positions: Tensor,
    /// For the backward: the embedding gradient indices of the ids (padding skipped) and of
    /// the positions.
    pub grad_index: Option<(EmbeddingGradIndex, EmbeddingGradIndex)>,
}

impl DecoderInputs {
    /// Uploads `ids` (`batch` rows of `ids.len() / batch`), checking them against the
    /// vocabulary and the decoder's `max_length`.
    pub fn new(
        gpu: &Gpu,
        ids: &[u32],
        batch: usize,
        dims: &DecoderDims,
        pad_id: u32,
        for_backward: bool,
    ) -> Result<Self> {
        if batch == 0 || ids.is_empty() || !ids.len().is_multiple_of(batch) {
            bail!(
                "decoder inputs: {} ids do not split into {batch} rows",
                ids.len()
            );
        }
        let seq = ids.len() / batch;
        if seq > dims.max_length {
            bail!(
                "decoder inputs of {seq} positions exceed the decoder's max_length ({})",
                dims.max_length
            );
        }
        if let Some(bad) = ids.iter().find(|&&id| id as usize >= dims.vocab) {
            bail!(
                "decoder input id {bad} is outside the vocabulary of {}",
                dims.vocab
            );
        }
        let positions: Vec<u32> = (0..ids.len()).map(|i| (i % seq) as u32).collect();
        let grad_index = if for_backward {
            Some((
                EmbeddingGradIndex::skipping(gpu, ids, dims.vocab, Some(pad_id))?,
                EmbeddingGradIndex::new(gpu, &positions, dims.max_length)?,
            ))
        } else {
            None
        };
        Ok(Self {
            batch,
            seq,
            ids: Tensor::from_slice(gpu, ids, &[ids.len()])?,
            positions: Tensor::from_slice(gpu, &positions, &[ids.len()])?,
            grad_index,
        })
    }
}

/// The memory a decoder reads: `[B * tk, d]` states and their additive key mask `[B, tk]`.
pub struct Memory<'a> {
    pub states: &'a Tensor,
    pub mask: &'a Tensor,
    pub tk: usize,
}

/// What the backward needs.
pub struct DecoderSaved {
    sum: Tensor,
    norm: LayerNormOutput,
    layers: Vec<DecoderLayerSaved>,
}

impl Decoder {
    /// Declares the decoder under `pb` (its own prefix), tied to the word embeddings `word`
    /// `[vocab, d]`. Its dropout sites start at `site`: the embeddings', then five per layer.
    pub fn new(pb: &ParamBuilder, dims: &DecoderDims, word: ParamRef, site: u64) -> Self {
        let d = dims.layer.hidden;
        let embeddings = pb.pp("embeddings");
        Self {
            dims: *dims,
            position: embeddings.param(
                "position_embeddings.weight",
                &[dims.max_length, d],
                Init::Normal(0.02),
                Decay::Yes,
            ),
            norm: LayerNorm::new(&embeddings.pp("LayerNorm"), d, dims.layer.layer_norm_eps),
            layers: (0..dims.layers)
                .map(|n| {
                    DecoderLayer::new(
                        &pb.pp(format!("layer.{n}")),
                        &dims.layer,
                        site + 1 + 5 * n as u64,
                    )
                })
                .collect(),
            output: TiedOutput::new(word, dims.vocab, d),
            site,
        }
    }

    fn shape(inputs: &DecoderInputs, memory: &Memory<'_>) -> DecoderShape {
        DecoderShape {
            batch: inputs.batch,
            tq: inputs.seq,
            tk: memory.tk,
        }
    }

    /// The embedded inputs `LN(E[ids] + P[positions])` (dropout applied), and the sum and
    /// LayerNorm output the backward needs.
    pub fn embed(
        &self,
        w: &ArenaSet,
        ids: &Tensor,
        positions: &Tensor,
        mode: Mode,
    ) -> Result<(Tensor, Tensor, LayerNormOutput)> {
        let words = embedding_forward(ids, &w.get(&self.output.word)?)?;
        let sum = add(
            &words,
            &embedding_forward(positions, &w.get(&self.position)?)?,
        )?;
        let norm = self.norm.forward(w, &sum)?;
        let x = mode.dropout(&norm.y, self.dims.layer.dropout, Site(self.site))?;
        Ok((x, sum, norm))
    }

    /// The last layer's output `[B * T, d]` (teacher forcing).
    pub fn forward(
        &self,
        w: &ArenaSet,
        inputs: &DecoderInputs,
        memory: &Memory<'_>,
        mode: Mode,
    ) -> Result<(Tensor, DecoderSaved)> {
        let d = self.dims.layer.hidden;
        if memory.states.numel() != inputs.batch * memory.tk * d {
            bail!(
                "decoder memory {:?} is not [{} * {}, {d}]",
                memory.states.shape(),
                inputs.batch,
                memory.tk
            );
        }
        let shape = Self::shape(inputs, memory);
        let (mut x, sum, norm) = self.embed(w, &inputs.ids, &inputs.positions, mode)?;
        let mut layers = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            let (out, saved) = layer.forward(w, &x, memory.states, memory.mask, shape, mode)?;
            layers.push(saved);
            x = out;
        }
        Ok((x, DecoderSaved { sum, norm, layers }))
    }

    /// Back-propagates `dx` (the gradient of the last layer's output) through every layer
    /// and the embeddings, adding parameter gradients into `g`; returns the memory's
    /// gradient `[B * tk, d]`.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        w: &ArenaSet,
        g: &ArenaSet,
        dx: Tensor,
        saved: &DecoderSaved,
        inputs: &DecoderInputs,
        memory: &Memory<'_>,
        mode: Mode,
    ) -> Result<Tensor> {
        let Some((word_index, position_index)) = &inputs.grad_index else {
            bail!("the decoder inputs were not prepared for a backward pass");
        };
        let shape = Self::shape(inputs, memory);
        let dmemory = Tensor::zeros(dx.gpu(), memory.states.shape(), DType::F32)?;
        let mut dx = dx;
        for (layer, layer_saved) in self.layers.iter().zip(&saved.layers).rev() {
            dx = layer.backward(w, g, &dx, layer_saved, memory.states, &dmemory, shape, mode)?;
        }
        let dnorm = mode.dropout(&dx, self.dims.layer.dropout, Site(self.site))?;
        let dsum = self.norm.backward(w, g, &saved.sum, &dnorm, &saved.norm)?;
        embedding_backward_into(word_index, &dsum, &g.get(&self.output.word)?)?;
        embedding_backward_into(position_index, &dsum, &g.get(&self.position)?)?;
        Ok(dmemory)
    }
}
