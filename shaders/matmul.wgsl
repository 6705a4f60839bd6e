// Batched matrix multiply, general layout (scalar loads; any M, N, K and strides).
//   C[z] = alpha * op(A[z]) * op(B[z]) (+ beta * C[z] when ACCUMULATE) (+ bias, per column)
// op(A) is M x K: A stored row-major M x K (leading dimension lda), or K x M when TRANS_A.
// op(B) is K x N: B stored K x N (ldb), or N x K when TRANS_B. C is M x N (ldc).
// Batch z = outer * batch_inner + inner; operand X starts at element
// x_offset + outer * x_outer + inner * x_inner, which covers plain batches, attention heads
// interleaved in [B, T, H, dh], and Q/K/V sitting side by side in one [B*T, 3d] buffer.
// Register tiling: each invocation accumulates a TM x TN block in f32 (TM, TN <= 8); a
// workgroup of WG_X x WG_Y invocations covers a (WG_Y * TM) x (WG_X * TN) tile of C. Edge
// rows and columns are clamped for loads and skipped for stores, so no shape is excluded.
// matmul_vec4.wgsl is the faster variant for operands whose contiguous axis allows vec4.
// With GELU_OUT, d also receives gelu(C) (the fused bias + GELU epilogue).
// Bindings: 0 params, 1 a, 2 b, 3 bias (read only when HAS_BIAS; pass any buffer), 4 c,
// 5 d (written only when GELU_OUT; pass a scratch buffer otherwise).
// Dispatch: (ceil(N / (WG_X * TN)), ceil(M / (WG_Y * TM)), batch) workgroups.

// Prepended from lib/: struct Params (matmul_params.wgsl), gelu_of (gelu.wgsl), and from
// matmul_io.wgsl the bindings p, bias, c, d, the switches TRANS_A, TRANS_B, HAS_BIAS,
// ACCUMULATE, GELU_OUT, batch_origins() and the epilogue store_c().

@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;

override WG_X: u32 = 8;
override WG_Y: u32 = 8;
override TM: u32 = 4;
override TN: u32 = 4;

@compute @workgroup_size(WG_X, WG_Y, 1)
fn matmul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = (wid.y * WG_Y + lid.y) * TM;
    let col0 = (wid.x * WG_X + lid.x) * TN;
    if (row0 >= p.m || col0 >= p.n) {
        return;
    }
    let origins = batch_origins(wid.z);
    let a_base = origins.a;
    let b_base = origins.b;
    let c_base = origins.c;

    var rows: array<u32, 8>;
    var cols: array<u32, 8>;
    for (var r = 0u; r < TM; r++) {
        rows[r] = min(row0 + r, p.m - 1u);
    }
    for (var j = 0u; j < TN; j++) {
        cols[j] = min(col0 + j, p.n - 1u);
    }

    var acc: array<f32, 64>;
    for (var kk = 0u; kk < p.k; kk++) {
        var av: array<f32, 8>;
        var bv: array<f32, 8>;
        for (var r = 0u; r < TM; r++) {
            if (TRANS_A) {
                av[r] = a[a_base + kk * p.lda + rows[r]];
            } else {
                av[r] = a[a_base + rows[r] * p.lda + kk];
            }
        }
        for (var j = 0u; j < TN; j++) {
            if (TRANS_B) {
                bv[j] = b[b_base + cols[j] * p.ldb + kk];
            } else {
                bv[j] = b[b_base + kk * p.ldb + cols[j]];
            }
        }
        for (var r = 0u; r < TM; r++) {
            for (var j = 0u; j < TN; j++) {
                acc[r * TN + j] = fma(av[r], bv[j], acc[r * TN + j]);
            }
        }
    }

    for (var r = 0u; r < TM; r++) {
        let row = row0 + r;
        if (row >= p.m) {
            break;
        }
        for (var j = 0u; j < TN; j++) {
            let col = col0 + j;
            if (col >= p.n) {
                break;
            }
            store_c(c_base + row * p.ldc + col, col, acc[r * TN + j]);
        }
    }
}
