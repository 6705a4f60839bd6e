//! The output projection of a decoder, tied to the word embeddings `E [V, d]`
//! (`logits = x E^T`, no bias), with its cross-entropy fused over row chunks so that the
//! `[rows, V]` logits of a batch are never stored whole.
//!
//! `loss_and_backward` walks the rows `chunk_rows` at a time: logits of the chunk (one
//! matmul), the cross-entropy kernel (each row's loss and d(logits), normalised by the
//! labelled rows of the whole set), then, since the loss is the end of the graph, the
//! backward of the chunk at once: `dx = dlogits E` into the chunk's rows and `dE +=
//! dlogits^T x`. What it keeps at a time: one chunk's logits and their gradient (two
//! `[chunk_rows, V]` blocks, at most `chunk_bytes` each: 32 MiB by default, 274 rows at
//! V = 30,522), the rows' losses and the `[rows, d]` dx. Chunks with no labelled row are
//! skipped.

use anyhow::{Result, bail};

use super::params::{ArenaSet, ParamRef};
use crate::gpu::{DType, Tensor};
use crate::ops::elementwise::accumulate;
use crate::ops::loss::{CrossEntropyOptions, cross_entropy};
use crate::ops::matmul::{Kernel, Matmul, matmul_backward_into, matmul_into};

/// The default bound on one chunk's logits, in bytes.
pub const DEFAULT_CHUNK_BYTES: usize = 32 << 20;

/// `logits = x E^T` over the vocabulary of the tied word embeddings.
pub struct TiedOutput {
    /// The word embeddings `[vocab, hidden]`.
    pub word: ParamRef,
    pub vocab: usize,
    pub hidden: usize,
    /// The bound on one chunk's logits (and on their gradient), in bytes.
    pub chunk_bytes: usize,
}

/// The loss of a fused forward and backward.
pub struct VocabLoss {
    /// The mean cross-entropy, one element on the GPU.
    pub loss: Tensor,
    /// The gradient of the loss (times the options' grad_scale) with respect to `x`.
    pub dx: Tensor,
}

impl TiedOutput {
    pub fn new(word: ParamRef, vocab: usize, hidden: usize) -> Self {
        Self {
            word,
            vocab,
            hidden,
            chunk_bytes: DEFAULT_CHUNK_BYTES,
        }
    }

    /// How many rows one chunk holds.
    pub fn chunk_rows(&self) -> usize {
        (self.chunk_bytes / (4 * self.vocab.max(1))).max(1)
    }

    /// `x [rows, d]`'s rows `from..from + n` times `E^T`.
    fn chunk_spec(&self, from: usize, n: usize) -> Matmul {
        let mut spec = Matmul::new(1, n, self.vocab, self.hidden, false, true);
        spec.a.offset = from * self.hidden;
        spec
    }

    fn rows_of(&self, x: &Tensor) -> Result<usize> {
        if x.numel() == 0 || !x.numel().is_multiple_of(self.hidden) {
            bail!(
                "output projection: input {:?} is not [rows, {}]",
                x.shape(),
                self.hidden
            );
        }
        Ok(x.numel() / self.hidden)
    }

    /// The logits `[rows, V]` of every row (decoding: a few rows at a time).
    pub fn logits(&self, w: &ArenaSet, x: &Tensor) -> Result<Tensor> {
        let rows = self.rows_of(x)?;
        let logits = Tensor::empty(x.gpu(), &[rows, self.vocab], DType::F32)?;
        let spec = self.chunk_spec(0, rows);
        matmul_into(
            x,
            &w.get(&self.word)?,
            None,
            &logits,
            &spec,
            1.0,
            0.0,
            Kernel::Auto,
        )?;
        Ok(logits)
    }

    /// The mean cross-entropy of `x E^T` against `targets` (one per row; `ignore_index`
    /// rows count for nothing), and, when `dword` (`[V, d]`, the word embeddings' gradient or
    /// a buffer for it) is given, its backward: dx returned and dE added into `dword`.
    /// Without `dword`, `dx` is left zero.
    pub fn loss_and_backward(
        &self,
        w: &ArenaSet,
        dword: Option<&Tensor>,
        x: &Tensor,
        targets: &[i32],
        opts: &CrossEntropyOptions,
    ) -> Result<VocabLoss> {
        let rows = self.rows_of(x)?;
        if targets.len() != rows {
            bail!(
                "output projection: {} targets for {rows} rows",
                targets.len()
            );
        }
        for (row, &t) in targets.iter().enumerate() {
            if t != opts.ignore_index && (t < 0 || t as usize >= self.vocab) {
                bail!(
                    "output projection: target {t} in row {row} is not a token id in 0..{} \
                     nor the ignore index {}",
                    self.vocab,
                    opts.ignore_index
                );
            }
        }
        let gpu = x.gpu();
        let labelled = |t: &i32| *t != opts.ignore_index;
        let weight = |t: i32| {
            opts.class_weights
                .as_ref()
                .and_then(|w| w.get(t as usize))
                .map_or(1.0, |&w| w as f64)
        };
        let normalizer: f64 = targets
            .iter()
            .filter(|t| labelled(t))
            .map(|&t| weight(t))
            .sum();
        let embeddings = w.get(&self.word)?;
        if let Some(de) = dword
            && de.numel() != self.vocab * self.hidden
        {
            bail!(
                "output projection: a gradient {:?} for embeddings [{}, {}]",
                de.shape(),
                self.vocab,
                self.hidden
            );
        }
        let dembeddings = dword;
        let loss = Tensor::zeros(gpu, &[1], DType::F32)?;
        let dx = Tensor::zeros(gpu, &[rows, self.hidden], DType::F32)?;
        let chunk = self.chunk_rows();
        for from in (0..rows).step_by(chunk) {
            let n = chunk.min(rows - from);
            let part = &targets[from..from + n];
            if !part.iter().any(labelled) {
                continue;
            }
            let spec = self.chunk_spec(from, n);
            let logits = Tensor::empty(gpu, &[n, self.vocab], DType::F32)?;
            matmul_into(x, &embeddings, None, &logits, &spec, 1.0, 0.0, Kernel::Auto)?;
            let chunk_opts = CrossEntropyOptions {
                normalizer: Some(normalizer),
                ..opts.clone()
            };
            let out = cross_entropy(&logits, part, &chunk_opts)?;
            drop(logits);
            accumulate(&loss, &out.loss, 1.0)?;
            if let Some(de) = dembeddings {
                let mut grad_spec = spec;
                grad_spec.c.offset = 0;
                matmul_backward_into(
                    x,
                    &embeddings,
                    &out.dlogits,
                    &grad_spec,
                    1.0,
                    Some((&dx, false)),
                    Some((de, true)),
                    None,
                )?;
            }
        }
        Ok(VocabLoss { loss, dx })
    }
}
