//! The output projection of a decoder, tied to the word embeddings `E [V, d]`
//! (`logits = x E^T`, no bias), with its cross-entropy fused over row chunks so that the
//! `[rows, V]` logits of a batch are never stored whole.
//!
//! `loss_and_backward` walks the rows `chunk_rows` at a time: logits of the chunk, the
//! cross-entropy kernel (each row's loss and d(logits), normalised by the labelled rows of
//! the whole set), then, since the loss is the end of the graph, the backward of the chunk at
//! once: `dx = dlogits E` into the chunk's rows and `dE += dlogits^T x`.
//!
//! The three products are long in the vocabulary, and the fast matmul kernels on CPU
//! adapters read their second operand through a texture, which `E` (30,522 rows) does not
//! fit. So each is written with `E` first and the chunk's few rows second, through
//! transposes (`ops::copy`): `logits^T = E x^T` then transposed; d(logits) transposed into
//! `Vocab::slices` slices of the vocabulary side by side (`[part, slices * n4]`, n4 the
//! chunk's rows rounded up to 4, the rest zero, then the remaining `tail` rows `[tail, n4]`),
//! so that `dE += dlogits^T x` is one batch of products over the slices and `dx^T = E^T
//! dlogits^T` is a batch of partial sums that a column sum adds up.
//!
//! Rows without a label (the padding of a batch's shorter targets) are left out before any
//! of this: the labelled rows are gathered into a packed `[labelled, d]` (`ops::embedding`'s
//! row gather), and their dx scattered back, so a batch pays for its real target tokens only.
//!
//! What it keeps at a time: one chunk's logits, their transpose, their gradient and its
//! transpose (four `[chunk_rows, V]` blocks, at most `chunk_bytes` each: 32 MiB by default,
//! 274 rows at V = 30,522), dx's partial sums (`[slices, d, n4]`), the rows' losses and the
//! `[rows, d]` dx. A set with no labelled row runs no product at all.

use anyhow::{Result, bail};

use super::params::{ArenaSet, ParamRef};
use crate::gpu::{DType, Tensor};
use crate::ops::copy::{Block, Repeat, copy_block, copy_blocks, transpose_block};
use crate::ops::elementwise::accumulate;
use crate::ops::embedding::{EmbeddingGradIndex, embedding_backward_into, embedding_forward};
use crate::ops::loss::{CrossEntropyOptions, cross_entropy};
use crate::ops::matmul::{Kernel, Matmul, matmul_into};
use crate::ops::reduce::colsum_into;

/// The default bound on one chunk's logits, in bytes.
pub const DEFAULT_CHUNK_BYTES: usize = 32 << 20;

/// The vocabulary rows of one slice of the backward's batched products (about).
const SLICE_ROWS: usize = 2048;
/// The most slices.
const MAX_SLICES: usize = 32;

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
        chunk_rows(self.chunk_bytes, self.vocab)
    }

    /// The logits `[rows, V]` of every row (decoding: a few rows at a time).
    pub fn logits(&self, w: &ArenaSet, x: &Tensor) -> Result<Tensor> {
        let embeddings = w.get(&self.word)?;
        let rows = rows_of(&embeddings, x)?;
        let logits = Tensor::empty(x.gpu(), &[rows, self.vocab], DType::F32)?;
        logits_into(&embeddings, x, 0, rows, &logits)?;
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
        tied_cross_entropy(
            &w.get(&self.word)?,
            dword,
            x,
            targets,
            opts,
            self.chunk_bytes,
        )
    }
}

fn chunk_rows(chunk_bytes: usize, vocab: usize) -> usize {
    (chunk_bytes / (4 * vocab.max(1))).max(1)
}

/// The rows of `x`, which must be `[rows, d]` for embeddings `[V, d]`.
fn rows_of(embeddings: &Tensor, x: &Tensor) -> Result<usize> {
    let [_, hidden] = embeddings.shape() else {
        bail!(
            "output projection: embeddings {:?} are not [vocab, hidden]",
            embeddings.shape()
        );
    };
    if x.numel() == 0 || !x.numel().is_multiple_of(*hidden) {
        bail!(
            "output projection: input {:?} is not [rows, {hidden}]",
            x.shape()
        );
    }
    Ok(x.numel() / hidden)
}

/// Rows from which the logits are computed as `E x^T` (then transposed): the CPU adapters'
/// subgroup kernel fills 32 columns of a product per subgroup, so fewer rows (a decoding step
/// of a few beams) run faster as `x E^T` directly.
const TRANSPOSED_LOGITS_ROWS: usize = 32;

/// Writes the logits of rows `from..from + n` of `x` into `logits [n, V]`: with at least
/// `TRANSPOSED_LOGITS_ROWS` rows, `E x^T` into a `[V, n4]` scratch, then transposed; else
/// `x E^T`.
fn logits_into(
    embeddings: &Tensor,
    x: &Tensor,
    from: usize,
    n: usize,
    logits: &Tensor,
) -> Result<()> {
    let (vocab, hidden) = (embeddings.shape()[0], embeddings.shape()[1]);
    if n < TRANSPOSED_LOGITS_ROWS {
        let mut spec = Matmul::new(1, n, vocab, hidden, false, true);
        spec.a.offset = from * hidden;
        return matmul_into(x, embeddings, None, logits, &spec, 1.0, 0.0, Kernel::Auto);
    }
    let n4 = n.next_multiple_of(4);
    let transposed = Tensor::empty(x.gpu(), &[vocab, n4], DType::F32)?;
    let mut spec = Matmul::new(1, vocab, n, hidden, false, true);
    spec.b.offset = from * hidden;
    spec.c.ld = n4;
    matmul_into(
        embeddings,
        x,
        None,
        &transposed,
        &spec,
        1.0,
        0.0,
        Kernel::Auto,
    )?;
    let at = |ld, offset| Block { ld, offset };
    transpose_block(&transposed, at(n4, 0), logits, at(vocab, 0), vocab, n)
}

/// [`TiedOutput::loss_and_backward`] on the embeddings `[V, d]` themselves, `chunk_bytes`
/// bounding each chunk's logits.
pub fn tied_cross_entropy(
    embeddings: &Tensor,
    dembeddings: Option<&Tensor>,
    x: &Tensor,
    targets: &[i32],
    opts: &CrossEntropyOptions,
    chunk_bytes: usize,
) -> Result<VocabLoss> {
    let rows = rows_of(embeddings, x)?;
    let (vocab, hidden) = (embeddings.shape()[0], embeddings.shape()[1]);
    if targets.len() != rows {
        bail!(
            "output projection: {} targets for {rows} rows",
            targets.len()
        );
    }
    for (row, &t) in targets.iter().enumerate() {
        if t != opts.ignore_index && (t < 0 || t as usize >= vocab) {
            bail!(
                "output projection: target {t} in row {row} is not a token id in 0..{vocab} \
                 nor the ignore index {}",
                opts.ignore_index
            );
        }
    }
    if let Some(de) = dembeddings
        && de.numel() != vocab * hidden
    {
        bail!(
            "output projection: a gradient {:?} for embeddings [{vocab}, {hidden}]",
            de.shape()
        );
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
    let chunk_opts = CrossEntropyOptions {
        normalizer: Some(normalizer),
        ..opts.clone()
    };
    let kept: Vec<u32> = (0..rows as u32)
        .filter(|&r| labelled(&targets[r as usize]))
        .collect();
    if kept.is_empty() {
        // Nothing to predict: no loss and no gradient, and no product is run.
        return Ok(VocabLoss {
            loss: Tensor::zeros(gpu, &[1], DType::F32)?,
            dx: Tensor::zeros(gpu, &[rows, hidden], DType::F32)?,
        });
    }
    if kept.len() == rows {
        return labelled_rows_loss(
            embeddings,
            dembeddings,
            x,
            targets,
            &chunk_opts,
            chunk_bytes,
        );
    }
    // Unlabelled rows (a batch's padding) add nothing to the loss or either gradient: the
    // labelled rows are gathered, the projection runs on them alone, and their dx is
    // scattered back into a zero `[rows, d]`.
    let index = Tensor::from_slice(gpu, &kept, &[kept.len()])?;
    let packed = embedding_forward(&index, x)?;
    let packed_targets: Vec<i32> = kept.iter().map(|&r| targets[r as usize]).collect();
    let out = labelled_rows_loss(
        embeddings,
        dembeddings,
        &packed,
        &packed_targets,
        &chunk_opts,
        chunk_bytes,
    )?;
    let dx = Tensor::zeros(gpu, &[rows, hidden], DType::F32)?;
    if dembeddings.is_some() {
        let scatter = EmbeddingGradIndex::new(gpu, &kept, rows)?;
        embedding_backward_into(&scatter, &out.dx, &dx)?;
    }
    Ok(VocabLoss { loss: out.loss, dx })
}

/// The chunked loss and backward of [`tied_cross_entropy`] over the rows of `x`, every one
/// labelled, `opts.normalizer` set.
fn labelled_rows_loss(
    embeddings: &Tensor,
    dembeddings: Option<&Tensor>,
    x: &Tensor,
    targets: &[i32],
    chunk_opts: &CrossEntropyOptions,
    chunk_bytes: usize,
) -> Result<VocabLoss> {
    let gpu = x.gpu();
    let (rows, vocab, hidden) = (targets.len(), embeddings.shape()[0], embeddings.shape()[1]);
    let loss = Tensor::zeros(gpu, &[1], DType::F32)?;
    let dx = Tensor::zeros(gpu, &[rows, hidden], DType::F32)?;
    let chunk = chunk_rows(chunk_bytes, vocab);
    for from in (0..rows).step_by(chunk) {
        let n = chunk.min(rows - from);
        let part = &targets[from..from + n];
        let logits = Tensor::empty(gpu, &[n, vocab], DType::F32)?;
        logits_into(embeddings, x, from, n, &logits)?;
        let out = cross_entropy(&logits, part, chunk_opts)?;
        drop(logits);
        accumulate(&loss, &out.loss, 1.0)?;
        if let Some(de) = dembeddings {
            chunk_backward(embeddings, de, x, &dx, from, n, &out.dlogits)?;
        }
    }
    Ok(VocabLoss { loss, dx })
}

/// How the backward cuts the vocabulary: `slices` slices of `part` rows, then `tail` rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Vocab {
    slices: usize,
    part: usize,
    tail: usize,
}

impl Vocab {
    /// About `SLICE_ROWS` rows a slice (a multiple of 4), at most `MAX_SLICES` slices, the
    /// rest (under 4 rows a slice more) in the tail.
    fn cut(vocab: usize) -> Self {
        let slices = vocab.div_ceil(SLICE_ROWS).clamp(1, MAX_SLICES);
        let part = vocab / slices / 4 * 4;
        let slices = if part == 0 { 0 } else { slices };
        Self {
            slices,
            part,
            tail: vocab - slices * part,
        }
    }
}

/// The backward of rows `from..from + n`: `dE += dlogits^T x` and `dx[rows] = dlogits E`,
/// through d(logits) transposed and cut as the module says.
fn chunk_backward(
    embeddings: &Tensor,
    dembeddings: &Tensor,
    x: &Tensor,
    dx: &Tensor,
    from: usize,
    n: usize,
    dlogits: &Tensor,
) -> Result<()> {
    let gpu = x.gpu();
    let (vocab, hidden) = (embeddings.shape()[0], embeddings.shape()[1]);
    let n4 = n.next_multiple_of(4);
    let Vocab { slices, part, tail } = Vocab::cut(vocab);
    let head = slices * part;
    let at = |ld, offset| Block { ld, offset };
    // dlt: slice z's d(logits)^T [part, n4] at column z * n4 of [part, slices * n4], then
    // the tail [tail, n4]; the columns n.. of each are zero.
    let width = slices * n4;
    let dlt = if n4 == n {
        Tensor::empty(gpu, &[vocab, n4], DType::F32)?
    } else {
        Tensor::zeros(gpu, &[vocab, n4], DType::F32)?
    };
    let slices_side_by_side = Repeat {
        count: slices,
        src_stride: part,
        dst_stride: n4,
    };
    copy_blocks(
        dlogits,
        at(vocab, 0),
        &dlt,
        at(width.max(1), 0),
        n,
        part,
        slices_side_by_side,
        true,
    )?;
    transpose_block(dlogits, at(vocab, head), &dlt, at(n4, head * n4), n, tail)?;
    // The chunk's rows of x, padded with zero rows to n4.
    let (xs, x_offset) = if n4 == n {
        (x.clone(), from * hidden)
    } else {
        let padded = Tensor::zeros(gpu, &[n4, hidden], DType::F32)?;
        copy_block(
            x,
            at(hidden, from * hidden),
            &padded,
            at(hidden, 0),
            n,
            hidden,
        )?;
        (padded, 0)
    };

    // dE [V, d] += dlt x: slice z's rows z * part.. from its [part, n4] block.
    let mut de = Matmul::new(slices, part, hidden, n4, false, false);
    de.a = layout(width, n4, 0);
    de.b = layout(hidden, 0, x_offset);
    de.c = layout(hidden, part * hidden, 0);
    matmul_into(&dlt, &xs, None, dembeddings, &de, 1.0, 1.0, Kernel::Auto)?;
    let mut de_tail = Matmul::new(1, tail, hidden, n4, false, false);
    de_tail.a.offset = head * n4;
    de_tail.b.offset = x_offset;
    de_tail.c.offset = head * hidden;
    matmul_into(
        &dlt,
        &xs,
        None,
        dembeddings,
        &de_tail,
        1.0,
        1.0,
        Kernel::Auto,
    )?;

    // dx^T [d, n4] = E^T dlt: the slices' partial sums [slices, d, n4], summed, plus the tail.
    let dxt = Tensor::empty(gpu, &[hidden, n4], DType::F32)?;
    let mut dx_spec = Matmul::new(slices, hidden, n4, part, true, false);
    dx_spec.a = layout(hidden, part * hidden, 0);
    dx_spec.b = layout(width, n4, 0);
    match slices {
        0 => {}
        1 => matmul_into(
            embeddings,
            &dlt,
            None,
            &dxt,
            &dx_spec,
            1.0,
            0.0,
            Kernel::Auto,
        )?,
        _ => {
            let partial = Tensor::empty(gpu, &[slices, hidden * n4], DType::F32)?;
            matmul_into(
                embeddings,
                &dlt,
                None,
                &partial,
                &dx_spec,
                1.0,
                0.0,
                Kernel::Auto,
            )?;
            colsum_into(&partial, &dxt.reshape(&[hidden * n4])?, false)?;
        }
    }
    let mut dx_tail = Matmul::new(1, hidden, n4, tail, true, false);
    dx_tail.a.offset = head * hidden;
    dx_tail.b.offset = head * n4;
    // The tail adds to the slices' sum, or writes dx^T alone when there are no slices.
    let tail_beta = if slices == 0 { 0.0 } else { 1.0 };
    if tail > 0 {
        matmul_into(
            embeddings,
            &dlt,
            None,
            &dxt,
            &dx_tail,
            1.0,
            tail_beta,
            Kernel::Auto,
        )?;
    }
    transpose_block(&dxt, at(n4, 0), dx, at(hidden, from * hidden), hidden, n)
}

/// A batched operand: rows `ld` apart, batch `z` at `offset + z * stride`.
fn layout(ld: usize, stride: usize, offset: usize) -> crate::ops::matmul::Layout {
    crate::ops::matmul::Layout {
        ld,
        outer_stride: stride,
        inner_stride: stride,
        offset,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cut covers the vocabulary once: slices of equal multiples of 4, a short tail.
    #[test]
    fn vocabulary_cut_covers_every_row_once() {
        for vocab in [1, 3, 4, 5, 61, 2048, 2049, 30522, 100_000, 250_002] {
            let c = Vocab::cut(vocab);
            assert_eq!(c.slices * c.part + c.tail, vocab, "{vocab}: {c:?}");
            assert!(c.part.is_multiple_of(4), "{vocab}: {c:?}");
            assert!(c.slices <= MAX_SLICES, "{vocab}: {c:?}");
            if c.slices > 0 {
                assert!(c.tail < 4 * c.slices, "{vocab}: {c:?}");
            } else {
                assert!(vocab < 4);
            }
        }
        assert_eq!(
            Vocab::cut(30522),
            Vocab {
                slices: 15,
                part: 2032,
                tail: 42
            }
        );
    }
}
