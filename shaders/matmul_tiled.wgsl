// Batched matrix multiply with workgroup-memory tiling, for GPUs: the same contract as
// matmul.wgsl,
//   C[z] = alpha * op(A[z]) * op(B[z]) (+ beta * C[z] when ACCUMULATE) (+ bias, per column)
//   (and gelu(C) into d with GELU_OUT),
// any layout, any M, N, K. A workgroup of WG_X x WG_Y invocations computes a
// BM x BN = (WG_Y * TM) x (WG_X * TN) tile of C: per step of BK = 16 along K it stages a
// BM x BK slice of op(A) and a BK x BN slice of op(B) in workgroup memory (every invocation
// loads a share, zero-filled past the edges), synchronizes, and accumulates its TM x TN
// register block (TM, TN <= 8) from there. Workgroup memory: (BM + BN) * 16 floats, at most
// 16 KiB for BM, BN <= 128.
// Bindings: 0 params, 1 a, 2 b, 3 bias (read only when HAS_BIAS), 4 c, 5 d (GELU_OUT).
// Dispatch: (ceil(N / BN), ceil(M / BM), batch) workgroups.

// Prepended from lib/: struct Params (matmul_params.wgsl), gelu_of (gelu.wgsl), and from
// matmul_io.wgsl the bindings p, bias, c, d, the switches TRANS_A, TRANS_B, HAS_BIAS,
// ACCUMULATE, GELU_OUT, batch_origins() and the epilogue store_c().

@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;

override WG_X: u32 = 16;
override WG_Y: u32 = 16;
override TM: u32 = 4;
override TN: u32 = 4;

const BK: u32 = 16u;

// [BK][BM] and [BK][BN], k-major so the inner loop reads contiguous rows.
var<workgroup> tile_a: array<f32, BK * WG_Y * TM>;
var<workgroup> tile_b: array<f32, BK * WG_X * TN>;

fn a_elem(base: u32, i: u32, kk: u32) -> f32 {
    if (i >= p.m || kk >= p.k) {
        return 0.0;
    }
    if (TRANS_A) {
        return a[base + kk * p.lda + i];
    }
    return a[base + i * p.lda + kk];
}

fn b_elem(base: u32, kk: u32, j: u32) -> f32 {
    if (j >= p.n || kk >= p.k) {
        return 0.0;
    }
    if (TRANS_B) {
        return b[base + j * p.ldb + kk];
    }
    return b[base + kk * p.ldb + j];
}

@compute @workgroup_size(WG_X, WG_Y, 1)
fn matmul_tiled(@builtin(workgroup_id) wid: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>,
                @builtin(local_invocation_index) flat: u32) {
    let bm = WG_Y * TM;
    let bn = WG_X * TN;
    let threads = WG_X * WG_Y;
    let row_block = wid.y * bm;
    let col_block = wid.x * bn;
    let origins = batch_origins(wid.z);
    let a_base = origins.a;
    let b_base = origins.b;
    let c_base = origins.c;

    var acc: array<f32, 64>;
    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        // Stage the tiles; consecutive invocations load consecutive rows of the slice.
        for (var e = flat; e < BK * bm; e += threads) {
            let kk = e / bm;
            let i = e % bm;
            tile_a[e] = a_elem(a_base, row_block + i, k0 + kk);
        }
        for (var e = flat; e < BK * bn; e += threads) {
            let kk = e / bn;
            let j = e % bn;
            tile_b[e] = b_elem(b_base, k0 + kk, col_block + j);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            var av: array<f32, 8>;
            var bv: array<f32, 8>;
            for (var r = 0u; r < TM; r++) {
                av[r] = tile_a[kk * bm + lid.y * TM + r];
            }
            for (var j = 0u; j < TN; j++) {
                bv[j] = tile_b[kk * bn + lid.x * TN + j];
            }
            for (var r = 0u; r < TM; r++) {
                for (var j = 0u; j < TN; j++) {
                    acc[r * TN + j] = fma(av[r], bv[j], acc[r * TN + j]);
                }
            }
        }
        workgroupBarrier();
    }

    for (var r = 0u; r < TM; r++) {
        let row = row_block + lid.y * TM + r;
        if (row >= p.m) {
            break;
        }
        for (var j = 0u; j < TN; j++) {
            let col = col_block + lid.x * TN + j;
            if (col >= p.n) {
                break;
            }
            store_c(c_base + row * p.ldc + col, col, acc[r * TN + j]);
        }
    }
}
