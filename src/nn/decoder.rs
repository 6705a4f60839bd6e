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
    /// For the backward: the embedding gradient index of the ids (padding skipped).
    pub grad_index: Option<EmbeddingGradIndex>,
}

impl DecoderInputs {
    /// Uploads `ids` (`batch` rows of `ids.len() / batch`), checking them against the
    /// vocabulary (the decoder checks their length against its `max_length`).
    pub fn new(
        gpu: &Gpu,
        ids: &[u32],
        batch: usize,
        vocab: usize,
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
        if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab) {
            bail!("decoder input id {bad} is outside the vocabulary of {vocab}");
        }
        let positions: Vec<u32> = (0..ids.len()).map(|i| (i % seq) as u32).collect();
        let grad_index = if for_backward {
            Some(EmbeddingGradIndex::skipping(gpu, ids, vocab, Some(pad_id))?)
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
        if inputs.seq > self.dims.max_length {
            bail!(
                "decoder inputs of {} positions exceed the decoder's max_length ({})",
                inputs.seq,
                self.dims.max_length
            );
        }
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
        let Some(word_index) = &inputs.grad_index else {
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
        let positions: Vec<u32> = (0..inputs.batch * inputs.seq)
            .map(|i| (i % inputs.seq) as u32)
            .collect();
        let position_index = EmbeddingGradIndex::new(dx.gpu(), &positions, self.dims.max_length)?;
        embedding_backward_into(&position_index, &dsum, &g.get(&self.position)?)?;
        Ok(dmemory)
    }
}

/// The key/value cache of a batched decoding: per layer, the self-attention keys|values of
/// the positions fed so far (`[rows * capacity, 2d]`) and the cross-attention keys|values
/// of the memory, projected once (`[rows * tk, 2d]`), with the memory's key mask.
pub struct DecoderCache {
    pub rows: usize,
    pub capacity: usize,
    pub tk: usize,
    self_kv: Vec<Tensor>,
    cross_kv: Vec<Tensor>,
    mask: Tensor,
    /// Positions fed so far (the next step's position).
    pub len: usize,
}

impl Decoder {
    /// The memory's states `[B * copies * tk, d]` and mask `[B * copies, tk]`, each memory
    /// row repeated `copies` times (row `b * copies + k` reads memory row `b`).
    pub fn repeat_memory(&self, memory: &Memory<'_>, copies: usize) -> Result<(Tensor, Tensor)> {
        let d = self.dims.layer.hidden;
        let tk = memory.tk;
        if tk == 0 || !memory.states.numel().is_multiple_of(tk * d) || copies == 0 {
            bail!(
                "decoder memory {:?} is not [B * {tk}, {d}]",
                memory.states.shape()
            );
        }
        let batch = memory.states.numel() / (tk * d);
        let gpu = memory.states.gpu();
        let repeat: Vec<u32> = (0..batch * copies).map(|r| (r / copies) as u32).collect();
        let repeat = Tensor::from_slice(gpu, &repeat, &[repeat.len()])?;
        let states = embedding_forward(&repeat, &memory.states.reshape(&[batch, tk * d])?)?
            .reshape(&[batch * copies * tk, d])?;
        let mask = embedding_forward(&repeat, &memory.mask.reshape(&[batch, tk])?)?;
        Ok((states, mask))
    }

    /// A cache for decoding `copies` sequences per memory row (beam search: the beam width)
    /// for up to `capacity` positions: each memory row and its mask repeated `copies` times
    /// (row `b * copies + k` reads memory row `b`), and every layer's cross-attention
    /// keys|values projected from it.
    pub fn start_cache(
        &self,
        w: &ArenaSet,
        memory: &Memory<'_>,
        copies: usize,
        capacity: usize,
    ) -> Result<DecoderCache> {
        let (d, tk) = (self.dims.layer.hidden, memory.tk);
        if capacity == 0 || capacity > self.dims.max_length {
            bail!(
                "cannot decode {capacity} positions with a decoder of max_length {}",
                self.dims.max_length
            );
        }
        let (states, mask) = self.repeat_memory(memory, copies)?;
        let rows = mask.numel() / tk;
        let gpu = memory.states.gpu();
        let cross_kv = self
            .layers
            .iter()
            .map(|layer| layer.cross_kv.forward(w, &states))
            .collect::<Result<_>>()?;
        let self_kv = (0..self.layers.len())
            .map(|_| Tensor::zeros(gpu, &[rows * capacity, 2 * d], DType::F32))
            .collect::<Result<_>>()?;
        Ok(DecoderCache {
            rows,
            capacity,
            tk,
            self_kv,
            cross_kv,
            mask,
            len: 0,
        })
    }

    /// Feeds one token per row at the cache's next position; returns the logits `[rows, V]`.
    pub fn step(&self, w: &ArenaSet, cache: &mut DecoderCache, tokens: &[u32]) -> Result<Tensor> {
        if tokens.len() != cache.rows {
            bail!(
                "decoder step: {} tokens for {} rows",
                tokens.len(),
                cache.rows
            );
        }
        if cache.len >= cache.capacity {
            bail!(
                "decoder step: the cache holds only {} positions",
                cache.capacity
            );
        }
        if let Some(bad) = tokens.iter().find(|&&t| t as usize >= self.dims.vocab) {
            bail!(
                "decoder step: token {bad} is outside the vocabulary of {}",
                self.dims.vocab
            );
        }
        let gpu = cache.mask.gpu().clone();
        let ids = Tensor::from_slice(&gpu, tokens, &[tokens.len()])?;
        let positions = vec![cache.len as u32; tokens.len()];
        let positions = Tensor::from_slice(&gpu, &positions, &[tokens.len()])?;
        let (mut x, _, _) = self.embed(w, &ids, &positions, Mode::Infer)?;
        for (l, layer) in self.layers.iter().enumerate() {
            x = layer.step(
                w,
                &x,
                &cache.self_kv[l],
                cache.capacity,
                cache.len,
                &cache.cross_kv[l],
                &cache.mask,
                cache.tk,
            )?;
        }
        cache.len += 1;
        self.output.logits(w, &x)
    }
}

impl DecoderCache {
    /// Row `r` takes the self-attention history of row `parents[r]` (beam search: each new
    /// beam continues one of the old ones). The memory side is shared by a row's copies and
    /// parents stay within their input, so it is left as is.
    pub fn reorder(&mut self, parents: &[u32]) -> Result<()> {
        if parents.len() != self.rows || parents.iter().any(|&p| p as usize >= self.rows) {
            bail!("decoder cache: parents {parents:?} for {} rows", self.rows);
        }
        let gpu = self.mask.gpu().clone();
        let parents = Tensor::from_slice(&gpu, parents, &[parents.len()])?;
        for kv in &mut self.self_kv {
            let width = kv.numel() / self.rows;
            *kv = embedding_forward(&parents, &kv.reshape(&[self.rows, width])?)?
                .reshape(kv.shape())?;
        }
        Ok(())
    }
}
