// Batched matrix multiply with vec4 loads: the same contract as matmul.wgsl,
//   C[z] = alpha * op(A[z]) * op(B[z]) (+ beta * C[z] when ACCUMULATE) (+ bias, per column),
// for operands whose contiguous axis is read 4 floats at a time. Preconditions, checked by
// the launcher: K % 4 == 0, and lda, ldb, the offsets and every batch stride of A and B
// multiples of 4
// (so every vec4 starts on a 16-byte boundary and stays inside its row).
// Each invocation loads, per step of 4 along K, a TM x 4 block of op(A) and a 4 x TN block of
// op(B) as vec4s (along K for A and along N for B when not transposed; along M for a
// transposed A and along K for a transposed B), regroups them in registers and accumulates a
// TM x TN block of C in f32. TM and TN are 4 or 8. Edge rows/columns are clamped for loads
// (to the last full vec4) and skipped for stores, so M and N are free.
// With GELU_OUT, d also receives gelu(C) (the fused bias + GELU epilogue).
// Bindings: 0 params, 1 a (vec4), 2 b (vec4), 3 bias (read only when HAS_BIAS), 4 c, 5 d
// (written only when GELU_OUT).
// Dispatch: (ceil(N / (WG_X * TN)), ceil(M / (WG_Y * TM)), batch) workgroups.

// Prepended from lib/: struct Params (matmul_params.wgsl), gelu_of (gelu.wgsl), and from
// matmul_io.wgsl the bindings p, bias, c, d, the switches TRANS_A, TRANS_B, HAS_BIAS,
// ACCUMULATE, GELU_OUT, batch_origins() and the epilogue store_c().

@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;

override WG_X: u32 = 8;
override WG_Y: u32 = 8;
override TM: u32 = 8;
override TN: u32 = 8;

@compute @workgroup_size(WG_X, WG_Y, 1)
fn matmul_vec4(@builtin(workgroup_id) wid: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = (wid.y * WG_Y + lid.y) * TM;
    let col0 = (wid.x * WG_X + lid.x) * TN;
    if (row0 >= p.m || col0 >= p.n) {
        return;
    }
    let tn4 = TN / 4u;
    let origins = batch_origins(wid.z);
    let a_base = origins.a;
    let b_base = origins.b;
    let c_base = origins.c;
    // Last valid vec4 start along M and N (for transposed A and plain B).
    let m_last4 = ((p.m - 1u) / 4u) * 4u;
    let n_last4 = ((p.n - 1u) / 4u) * 4u;

    var acc: array<vec4<f32>, 16>;
    for (var kk = 0u; kk < p.k; kk += 4u) {
        // a_rows[r] = op(A)[row0 + r, kk .. kk + 4]
        var a_rows: array<vec4<f32>, 8>;
        if (TRANS_A) {
            for (var q = 0u; q < 4u; q++) {
                for (var r4 = 0u; r4 < TM / 4u; r4++) {
                    let start = min(row0 + 4u * r4, m_last4);
                    let v = a[(a_base + (kk + q) * p.lda + start) / 4u];
                    a_rows[4u * r4 + 0u][q] = v.x;
                    a_rows[4u * r4 + 1u][q] = v.y;
                    a_rows[4u * r4 + 2u][q] = v.z;
                    a_rows[4u * r4 + 3u][q] = v.w;
                }
            }
        } else {
            for (var r = 0u; r < TM; r++) {
                let row = min(row0 + r, p.m - 1u);
                a_rows[r] = a[(a_base + row * p.lda + kk) / 4u];
            }
        }
        // b_cols[q * tn4 + j4] = op(B)[kk + q, col0 + 4 * j4 .. + 4]
        var b_cols: array<vec4<f32>, 8>;
        if (TRANS_B) {
            for (var j = 0u; j < TN; j++) {
                let col = min(col0 + j, p.n - 1u);
                let v = b[(b_base + col * p.ldb + kk) / 4u];
                b_cols[0u * tn4 + j / 4u][j % 4u] = v.x;
                b_cols[1u * tn4 + j / 4u][j % 4u] = v.y;
                b_cols[2u * tn4 + j / 4u][j % 4u] = v.z;
                b_cols[3u * tn4 + j / 4u][j % 4u] = v.w;
            }
        } else {
            for (var q = 0u; q < 4u; q++) {
                for (var j4 = 0u; j4 < tn4; j4++) {
                    let start = min(col0 + 4u * j4, n_last4);
                    b_cols[q * tn4 + j4] = b[(b_base + (kk + q) * p.ldb + start) / 4u];
                }
            }
        }
        for (var r = 0u; r < TM; r++) {
            let ar = a_rows[r];
            for (var j4 = 0u; j4 < tn4; j4++) {
                var s = acc[r * tn4 + j4];
                s = fma(vec4<f32>(ar.x), b_cols[0u * tn4 + j4], s);
                s = fma(vec4<f32>(ar.y), b_cols[1u * tn4 + j4], s);
                s = fma(vec4<f32>(ar.z), b_cols[2u * tn4 + j4], s);
                s = fma(vec4<f32>(ar.w), b_cols[3u * tn4 + j4], s);
                acc[r * tn4 + j4] = s;
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
            store_c(c_base + row * p.ldc + col, col, acc[r * tn4 + j / 4u][j % 4u]);
        }
    }
}
