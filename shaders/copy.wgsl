// Strided block copy: a `rows x cols` block of one matrix into another,
//   dst[dst_offset + r * dst_ld + c] = src[src_offset + r * src_ld + c]   (r < rows, c < cols)
// Decoding writes the newest position's keys|values from the fused projection into each
// sequence's key/value cache with it (src: [B, 3d] at column d; dst: [B * capacity, 2d] at
// row t of each sequence, so dst_ld = capacity * 2d).
// Bindings: 0 params, 1 src, 2 dst (written only inside the block).
// Dispatch: ceil(rows * cols / WG) workgroups, folded into x * y (lib/index.wgsl, prepended).

struct Params {
    rows: u32,
    cols: u32,
    src_ld: u32,
    src_offset: u32,
    dst_ld: u32,
    dst_offset: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

override WG: u32 = 256;

@compute @workgroup_size(WG)
fn copy_block(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i >= p.rows * p.cols) {
        return;
    }
    let r = i / p.cols;
    let c = i % p.cols;
    dst[p.dst_offset + r * p.dst_ld + c] = src[p.src_offset + r * p.src_ld + c];
}
