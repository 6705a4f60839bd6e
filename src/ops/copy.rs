//! Launcher for `shaders/copy.wgsl`: strided block copies between two matrices, straight
//! (the decoder's key/value cache appends) or transposed (the tied output projection's
//! logits and d(logits)), one block or a row of equally spaced blocks per dispatch.

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
    count: u32,
    src_stride: u32,
    dst_stride: u32,
    _pad: [u32; 3],
}

/// Where a block sits in a row-major matrix: rows `ld` elements apart, starting at element
/// `offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    pub ld: usize,
    pub offset: usize,
}

/// `count` blocks, block `b` at `b * src_stride` past the source block and written
/// `b * dst_stride` past the destination block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repeat {
    pub count: usize,
    pub src_stride: usize,
    pub dst_stride: usize,
}

impl Repeat {
    /// One block.
    pub const ONCE: Repeat = Repeat {
        count: 1,
        src_stride: 0,
        dst_stride: 0,
    };
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
    copy_blocks(src, from, dst, to, rows, cols, Repeat::ONCE, false)
}

/// Copies the `rows x cols` block of `src` at `from` into `dst` at `to` transposed, as a
/// `cols x rows` block: `dst[to.offset + c * to.ld + r] = src[from.offset + r * from.ld + c]`.
pub fn transpose_block(
    src: &Tensor,
    from: Block,
    dst: &Tensor,
    to: Block,
    rows: usize,
    cols: usize,
) -> Result<()> {
    copy_blocks(src, from, dst, to, rows, cols, Repeat::ONCE, true)
}

/// Copies `repeat.count` blocks of `rows x cols` (transposed into `cols x rows` ones when
/// `transpose`), block `b` from `from.offset + b * repeat.src_stride` to
/// `to.offset + b * repeat.dst_stride`, in one dispatch. Errors when a block reaches past
/// its tensor or its rows overlap (`cols > ld`).
#[allow(clippy::too_many_arguments)]
pub fn copy_blocks(
    src: &Tensor,
    from: Block,
    dst: &Tensor,
    to: Block,
    rows: usize,
    cols: usize,
    repeat: Repeat,
    transpose: bool,
) -> Result<()> {
    ensure_f32("copy source", src)?;
    ensure_f32("copy destination", dst)?;
    if rows == 0 || cols == 0 || repeat.count == 0 {
        return Ok(());
    }
    let (dst_rows, dst_cols) = if transpose {
        (cols, rows)
    } else {
        (rows, cols)
    };
    let end = |b: Block, stride: usize, rows: usize, cols: usize| {
        b.offset + (repeat.count - 1) * stride + (rows - 1) * b.ld + cols
    };
    if cols > from.ld
        || dst_cols > to.ld
        || end(from, repeat.src_stride, rows, cols) > src.numel()
        || end(to, repeat.dst_stride, dst_rows, dst_cols) > dst.numel()
    {
        bail!(
            "copy: {} block(s) of {rows} x {cols} at {from:?} of {:?} into {to:?} of {:?}{} \
             ({repeat:?}) do not fit",
            repeat.count,
            src.shape(),
            dst.shape(),
            if transpose { " transposed" } else { "" }
        );
    }
    let params = Params {
        rows: to_u32("copy rows", rows)?,
        cols: to_u32("copy cols", cols)?,
        src_ld: to_u32("copy source stride", from.ld)?,
        src_offset: to_u32("copy source offset", from.offset)?,
        dst_ld: to_u32("copy destination stride", to.ld)?,
        dst_offset: to_u32("copy destination offset", to.offset)?,
        count: to_u32("copy block count", repeat.count)?,
        src_stride: to_u32("copy source block stride", repeat.src_stride)?,
        dst_stride: to_u32("copy destination block stride", repeat.dst_stride)?,
        _pad: [0; 3],
    };
    let items = repeat.count * rows * cols;
    to_u32("copy size", items)?;
    dispatch_1d(
        &COPY,
        "copy_block",
        WG,
        &[("TRANSPOSE", transpose as u32 as f64)],
        bytemuck::bytes_of(&params),
        &[src, dst],
        items as u64,
    )
}
