//! Launcher for `shaders/copy.wgsl`: a strided block copy between two matrices (the
//! decoder's key/value cache appends with it).

use anyhow::{Result, bail};
use bytemuck::{Pod, Zeroable};

use super::{dispatch_1d, ensure_f32, to_u32};
use crate::gpu::Tensor;
use crate::shaders::COPY;

const WG: u32 = 256;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct Params {
    rows: u32,
    cols: u32,
    src_ld: u32,
    src_offset: u32,
    dst_ld: u32,
    dst_offset: u32,
    _pad0: u32,
    _pad1: u32,
}

/// Where a block sits in a row-major matrix: rows `ld` elements apart, starting at element
/// `offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    pub ld: usize,
    pub offset: usize,
}

/// Copies the `rows x cols` block of `src` at `from` into `dst` at `to`.
pub fn copy_block(
    src: &Tensor,
    from: Block,
    dst: &Tensor,
    to: Block,
    rows: usize,
    cols: usize,
) -> Result<()> {
    ensure_f32("copy source", src)?;
    ensure_f32("copy destination", dst)?;
    if rows == 0 || cols == 0 {
        return Ok(());
    }
    let last = |b: Block| b.offset + (rows - 1) * b.ld + cols;
    if cols > from.ld || cols > to.ld || last(from) > src.numel() || last(to) > dst.numel() {
        bail!(
            "copy: a {rows} x {cols} block at {from:?} of {:?} into {to:?} of {:?} does not fit",
            src.shape(),
            dst.shape()
        );
    }
    let params = Params {
        rows: to_u32("copy rows", rows)?,
        cols: to_u32("copy cols", cols)?,
        src_ld: to_u32("copy source stride", from.ld)?,
        src_offset: to_u32("copy source offset", from.offset)?,
        dst_ld: to_u32("copy destination stride", to.ld)?,
        dst_offset: to_u32("copy destination offset", to.offset)?,
        _pad0: 0,
        _pad1: 0,
    };
    to_u32("copy size", rows * cols)?;
    dispatch_1d(
        &COPY,
        "copy_block",
        WG,
        &[],
        bytemuck::bytes_of(&params),
        &[src, dst],
        (rows * cols) as u64,
    )
}
