//! Launchers for `shaders/embedding.wgsl`: row gather and its deterministic scatter-add.

use anyhow::{Result, bail};
use bytemuck::{Pod, Zeroable};

use super::{dispatch_1d, ensure_f32, to_u32};
use crate::gpu::{DType, Gpu, Tensor};
use crate::shaders::EMBEDDING;

const WG: u32 = 256;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct Params {
    tokens: u32,
    dim: u32,
    vocab: u32,
    n_unique: u32,
}

/// Token positions grouped by id, built on the host from the batch's ids, so the backward
/// sums every table row in one invocation (no atomics, deterministic, repeats handled).
pub struct EmbeddingGradIndex {
    /// Distinct ids, ascending.
    pub unique: Tensor,
    /// CSR offsets into `positions`, `unique.len() + 1` entries.
    pub offsets: Tensor,
    /// Token positions sorted by id.
    pub positions: Tensor,
    n_unique: usize,
    tokens: usize,
    vocab: usize,
}

/// Host-side grouping of `ids`: (unique ids, CSR offsets, positions sorted by id).
pub fn group_ids(ids: &[u32]) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
    let mut positions: Vec<u32> = (0..ids.len() as u32).collect();
    positions.sort_by_key(|&p| (ids[p as usize], p));
    let mut unique = Vec::new();
    let mut offsets = Vec::new();
    for (k, &p) in positions.iter().enumerate() {
        let id = ids[p as usize];
        if unique.last() != Some(&id) {
            unique.push(id);
            offsets.push(k as u32);
        }
    }
    offsets.push(ids.len() as u32);
    (unique, offsets, positions)
}

impl EmbeddingGradIndex {
    /// Groups `ids` (every id must be below `vocab`).
    pub fn new(gpu: &Gpu, ids: &[u32], vocab: usize) -> Result<Self> {
        Self::skipping(gpu, ids, vocab, None)
    }

    /// As [`EmbeddingGradIndex::new`], but tokens with id `skip` add nothing to the table's
    /// gradient (PyTorch's `padding_idx`, which BERT sets to the pad token).
    pub fn skipping(gpu: &Gpu, ids: &[u32], vocab: usize, skip: Option<u32>) -> Result<Self> {
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= vocab) {
            bail!("embedding: token id {bad} is outside the vocabulary of {vocab}");
        }
        let (mut unique, mut offsets, mut positions) = group_ids(ids);
        if let Some(pos) = skip.and_then(|s| unique.iter().position(|&u| u == s)) {
            let (start, end) = (offsets[pos] as usize, offsets[pos + 1] as usize);
            positions.drain(start..end);
            unique.remove(pos);
            offsets.remove(pos + 1);
            for o in &mut offsets[pos + 1..] {
                *o -= (end - start) as u32;
            }
        }
        Ok(Self {
            n_unique: unique.len(),
            tokens: ids.len(),
            vocab,
            unique: Tensor::from_slice(gpu, &unique, &[unique.len()])?,
            offsets: Tensor::from_slice(gpu, &offsets, &[offsets.len()])?,
            positions: Tensor::from_slice(gpu, &positions, &[positions.len()])?,
        })
    }
}

/// `out[t] = table[ids[t]]`: ids `[tokens]` (u32), table `[vocab, dim]`, out `[tokens, dim]`.
pub fn embedding_forward(ids: &Tensor, table: &Tensor) -> Result<Tensor> {
    ensure_f32("embedding table", table)?;
    if ids.dtype() != DType::U32 {
        bail!("embedding: ids must be u32, got {:?}", ids.dtype());
    }
    let &[vocab, dim] = table.shape() else {
        bail!(
            "embedding: table must be [vocab, dim], got {:?}",
            table.shape()
        );
    };
    if vocab == 0 {
        bail!("embedding: the table has no rows");
    }
    let tokens = ids.numel();
    let gpu = table.gpu();
    let out = Tensor::empty(gpu, &[tokens, dim], DType::F32)?;
    let params = Params {
        tokens: to_u32("embedding tokens", tokens)?,
        dim: to_u32("embedding dim", dim)?,
        vocab: to_u32("embedding vocab", vocab)?,
        n_unique: 0,
    };
    let buffers = [ids, table, &out];
    let items = (tokens * dim) as u64;
    dispatch_1d(
        &EMBEDDING,
        "embedding_forward",
        WG,
        &[],
        bytemuck::bytes_of(&params),
        &buffers,
        items,
    )?;
    Ok(out)
}

/// Adds the gradient of `out` (`[tokens, dim]`) into `dtable` (`[vocab, dim]`).
pub fn embedding_backward_into(
    index: &EmbeddingGradIndex,
    dout: &Tensor,
    dtable: &Tensor,
) -> Result<()> {
    ensure_f32("embedding grad", dout)?;
    let &[vocab, dim] = dtable.shape() else {
        bail!(
            "embedding backward: dtable must be [vocab, dim], got {:?}",
            dtable.shape()
        );
    };
    if vocab != index.vocab || dout.shape() != [index.tokens, dim] {
        bail!(
            "embedding backward: dout {:?} and dtable {:?} do not fit {} tokens over a \
             vocabulary of {}",
            dout.shape(),
            dtable.shape(),
            index.tokens,
            index.vocab
        );
    }
    let params = Params {
        tokens: to_u32("embedding tokens", index.tokens)?,
        dim: to_u32("embedding dim", dim)?,
        vocab: to_u32("embedding vocab", vocab)?,
        n_unique: to_u32("embedding ids", index.n_unique)?,
    };
    let buffers = [
        &index.unique,
        &index.offsets,
        &index.positions,
        dout,
        dtable,
    ];
    let items = (index.n_unique * dim) as u64;
    dispatch_1d(
        &EMBEDDING,
        "embedding_backward",
        WG,
        &[],
        bytemuck::bytes_of(&params),
        &buffers,
        items,
    )
}
