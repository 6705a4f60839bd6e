//! Launchers for `shaders/reduce.wgsl`: column sums (bias gradients), full sums (losses,
//! squared gradient norms) and inner products (of task gradients), each in as many passes
//! as needed.

use anyhow::{Result, bail};
use bytemuck::{Pod, Zeroable};

use super::{ensure_f32, to_u32};
use crate::gpu::{DType, Dispatch, Tensor};
use crate::shaders::REDUCE;

const WG: u32 = 64;
/// Rows one invocation sums per pass of the column sum.
const CHUNK_ROWS: usize = 64;
/// Invocations of the first pass of a full sum (each then strides over the input).
const MAX_SUM_THREADS: usize = 16384;
/// Elements each invocation of a full-sum pass sums at least.
const SUM_ITEMS_PER_THREAD: usize = 64;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct Params {
    rows: u32,
    cols: u32,
    chunk_rows: u32,
    threads: u32,
}

fn colsum_pass(x: &Tensor, rows: usize, cols: usize, out: &Tensor, accumulate: bool) -> Result<()> {
    let gpu = x.gpu();
    let chunks = rows.div_ceil(CHUNK_ROWS).max(1);
    let params = Params {
        rows: to_u32("colsum rows", rows)?,
        cols: to_u32("colsum cols", cols)?,
        chunk_rows: CHUNK_ROWS as u32,
        threads: 0,
    };
    gpu.dispatch(&Dispatch {
        shader: &REDUCE,
        entry: "colsum",
        defines: &[],
        overrides: &[("WG", WG as f64), ("ACCUMULATE", accumulate as u32 as f64)],
        params: bytemuck::bytes_of(&params),
        buffers: &[x, out],
        textures: &[],
        workgroups: [
            (cols as u32).div_ceil(WG),
            to_u32("colsum chunks", chunks)?,
            1,
        ],
    })
}

/// Writes (or with `accumulate` adds) the column sums of `x`, viewed as `[rows, cols]`
/// with `cols` its last dimension, into `out` (`cols` values).
pub fn colsum_into(x: &Tensor, out: &Tensor, accumulate: bool) -> Result<()> {
    ensure_f32("colsum input", x)?;
    let cols = out.numel();
    if cols == 0 || !x.numel().is_multiple_of(cols) {
        bail!(
            "colsum: input {:?} is not a multiple of {cols} columns",
            x.shape()
        );
    }
    let mut rows = x.numel() / cols;
    let mut current = x.clone();
    while rows > CHUNK_ROWS {
        let chunks = rows.div_ceil(CHUNK_ROWS);
        let partial = Tensor::empty(x.gpu(), &[chunks, cols], DType::F32)?;
        colsum_pass(&current, rows, cols, &partial, false)?;
        current = partial;
        rows = chunks;
    }
    colsum_pass(&current, rows, cols, out, accumulate)
}

/// Column sums of `x` over every dimension but the last.
pub fn colsum(x: &Tensor) -> Result<Tensor> {
    let cols = *x.shape().last().unwrap_or(&1);
    let out = Tensor::empty(x.gpu(), &[cols], DType::F32)?;
    colsum_into(x, &out, false)?;
    Ok(out)
}

fn sum_impl(x: &Tensor, square: bool) -> Result<Tensor> {
    ensure_f32("sum input", x)?;
    let gpu = x.gpu();
    let mut n = x.numel();
    let mut current = x.clone();
    let mut square = square;
    loop {
        let threads = n.div_ceil(SUM_ITEMS_PER_THREAD).clamp(1, MAX_SUM_THREADS);
        let out = Tensor::empty(gpu, &[threads], DType::F32)?;
        // Whole vec4s when the length allows (the output binding precedes the vec4 input).
        let vec4 = n.is_multiple_of(4) && n >= 4 * threads;
        let params = Params {
            rows: to_u32("sum elements", if vec4 { n / 4 } else { n })?,
            cols: 0,
            chunk_rows: 0,
            threads: threads as u32,
        };
        let (entry, buffers): (&'static str, [&Tensor; 2]) = if vec4 {
            ("sum_strided4", [&out, &current])
        } else {
            ("sum_strided", [&current, &out])
        };
        gpu.dispatch(&Dispatch {
            shader: &REDUCE,
            entry,
            defines: &[],
            overrides: &[("WG", WG as f64), ("SQUARE", square as u32 as f64)],
            params: bytemuck::bytes_of(&params),
            buffers: &buffers,
            textures: &[],
            workgroups: [(threads as u32).div_ceil(WG), 1, 1],
        })?;
        if threads == 1 {
            return Ok(out);
        }
        current = out;
        n = threads;
        square = false;
    }
}

/// The sum of all elements, as a one-element tensor.
pub fn sum(x: &Tensor) -> Result<Tensor> {
    sum_impl(x, false)
}

/// The sum of squares of all elements, as a one-element tensor.
pub fn sum_squares(x: &Tensor) -> Result<Tensor> {
    sum_impl(x, true)
}

/// The inner product `sum_i x[i] * y[i]` of two tensors of one length, as a one-element
/// tensor (one strided pass, then full sums).
pub fn dot(x: &Tensor, y: &Tensor) -> Result<Tensor> {
    ensure_f32("dot x", x)?;
    ensure_f32("dot y", y)?;
    super::ensure_same_len("dot", x, y)?;
    let gpu = x.gpu();
    let n = x.numel();
    let threads = n.div_ceil(SUM_ITEMS_PER_THREAD).clamp(1, MAX_SUM_THREADS);
    let out = Tensor::empty(gpu, &[threads], DType::F32)?;
    let params = Params {
        rows: to_u32("dot elements", n)?,
        cols: 0,
        chunk_rows: 0,
        threads: threads as u32,
    };
    gpu.dispatch(&Dispatch {
        shader: &REDUCE,
        entry: "dot_strided",
        defines: &[],
        overrides: &[("WG", WG as f64)],
        params: bytemuck::bytes_of(&params),
        buffers: &[x, &out, y],
        textures: &[],
        workgroups: [(threads as u32).div_ceil(WG), 1, 1],
    })?;
    if threads == 1 { Ok(out) } else { sum(&out) }
}
