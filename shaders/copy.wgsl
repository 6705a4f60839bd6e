// Strided block copy: `count` blocks of `rows x cols` of one matrix into another,
//   dst[dst_offset + b * dst_stride + r * dst_ld + c] = src[src_offset + b * src_stride + r * src_ld + c]
// (b < count, r < rows, c < cols), or, with TRANSPOSE, each block into its transposed
// `cols x rows` block,
//   dst[dst_offset + b * dst_stride + c * dst_ld + r] = src[src_offset + b * src_stride + r * src_ld + c].
// Decoding writes the newest position's keys|values from the fused projection into each
// sequence's key/value cache with it (src: [B, 3d] at column d; dst: [B * capacity, 2d] at
// row t of each sequence, so dst_ld = capacity * 2d). The tied output projection transposes
// logits and d(logits) with it, the vocabulary cut into `count` slices side by side, so that
// its long products read operands the fast matmul kernels take.
// Bindings: 0 params, 1 src, 2 dst (written only inside the blocks).
// Dispatch: ceil(count * rows * cols / WG) workgroups, folded into x * y (lib/index.wgsl,
// prepended).

struct Params {
    rows: u32,
    cols: u32,
    src_ld: u32,
    src_offset: u32,
    dst_ld: u32,
    dst_offset: u32,
    count: u32,
    src_stride: u32,
    dst_stride: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

override WG: u32 = 256;
override TRANSPOSE: bool = false;

@compute @workgroup_size(WG)
fn copy_block(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    let size = p.rows * p.cols;
    if (i >= p.count * size) {
        return;
    }
    let b = i / size;
    let r = (i % size) / p.cols;
    let c = i % p.cols;
    let value = src[p.src_offset + b * p.src_stride + r * p.src_ld + c];
    let base = p.dst_offset + b * p.dst_stride;
    if (TRANSPOSE) {
        dst[base + c * p.dst_ld + r] = value;
    } else {
        dst[base + r * p.dst_ld + c] = value;
    }
}
