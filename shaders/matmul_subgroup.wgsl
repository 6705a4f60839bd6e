// Batched matrix multiply for CPU adapters with 8- or 16-wide subgroups (lavapipe with 256-
// or 512-bit vectors, LP_NATIVE_VECTOR_WIDTH): the same
// contract as matmul.wgsl,
//   C[z] = alpha * op(A[z]) * op(B[z]) (+ beta * C[z] when ACCUMULATE) (+ bias, per column),
// shaped by what is cheap there. A storage-buffer load whose address differs per invocation
// costs a loop over the subgroup's lanes, a texel fetch does not, and a subgroup broadcast is
// a register move. So:
//   * A (shared by the subgroup): each lane loads ONE vec4 per step of 4 along K, covering
//     SG rows x 4 k between the SG lanes, and subgroupBroadcast hands every row to every lane;
//     two such loads give the subgroup's 16 rows (one load when SG = 16). Transposed A is loaded as vec4 along M.
//     With TEX_A the vec4 comes from a texture of A (like B's) instead of the buffer.
//   * B (different for every lane): read from an rgba32float texture holding B's buffer as
//     rows of ldb floats (texel (x, y) = B[y * ldb + 4x .. +4]; ops::texture packs it).
//   * each lane accumulates 16 rows x 4 columns in f32; a subgroup covers 16 x 4*SG of C.
// Preconditions (checked by the launcher): subgroup size SG with lanes in invocation order,
// K % 4 == 0, lda, ldb, offsets and batch strides of A and B multiples of 4.
// Batch z = outer * batch_inner + inner as in matmul.wgsl; B's batch origin maps to texel
// (x, y) = ((base % ldb) / 4, base / ldb).
// With GELU_OUT, d also receives gelu(C) (the fused bias + GELU epilogue).
// Bindings: 0 params, 1 a (vec4; read unless TEX_A), 2 bt (texture of B), 3 bias (read
// only when HAS_BIAS), 4 c, 5 d (written only when GELU_OUT), 6 at (texture of A; read when
// TEX_A).
// Dispatch: (ceil(N / (4 * SG)), ceil(M / (16 * CHUNKS)), batch) workgroups of SG * CHUNKS.

// Prepended from lib/: struct Params (matmul_params.wgsl), gelu_of (gelu.wgsl), and from
// matmul_io.wgsl the bindings p, bias, c, d, the switches TRANS_A, TRANS_B, HAS_BIAS,
// ACCUMULATE, GELU_OUT, batch_origins() and the epilogue store_c().

@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var bt: texture_2d<f32>;
@group(0) @binding(6) var at: texture_2d<f32>;

/// Subgroups per workgroup.
override CHUNKS: u32 = 8;
override TEX_A: bool = false;

/// The subgroup width: 8 (lavapipe with 256-bit vectors) or 16 (512-bit vectors).
override SG: u32 = 8u;

/// The vec4 of A at element `e` (a multiple of 4): from the texture of A (rows of lda) or
/// from the buffer.
fn a_at(e: u32) -> vec4<f32> {
    if (TEX_A) {
        let x = min((e % p.lda) / 4u, p.a_tex_width - 1u);
        let y = min(e / p.lda, p.a_tex_height - 1u);
        return textureLoad(at, vec2<u32>(x, y), 0);
    }
    return a[e / 4u];
}

/// The lane's share of 8 rows x 4 k of op(A) starting at row `row0`, k = 4 * kq.
fn a_vec(base: u32, row0: u32, lane: u32, kq: u32) -> vec4<f32> {
    if (TRANS_A) {
        let m_last4 = ((p.m - 1u) / 4u) * 4u;
        let m = min(row0 + 4u * (lane >> 2u), m_last4);
        let k = kq * 4u + (lane & 3u);
        return a_at(base + k * p.lda + m);
    }
    let row = min(row0 + lane, p.m - 1u);
    return a_at(base + row * p.lda + 4u * kq);
}

/// The 8 rows of `v` (one per lane) as k-vectors, broadcast to every lane.
fn a_rows(v: vec4<f32>) -> array<vec4<f32>, 8> {
    if (TRANS_A) {
        // Row r at k q sits in lane q + 4 * (r / 4), component r % 4.
        return array<vec4<f32>, 8>(
            vec4(subgroupBroadcast(v.x, 0u), subgroupBroadcast(v.x, 1u), subgroupBroadcast(v.x, 2u), subgroupBroadcast(v.x, 3u)),
            vec4(subgroupBroadcast(v.y, 0u), subgroupBroadcast(v.y, 1u), subgroupBroadcast(v.y, 2u), subgroupBroadcast(v.y, 3u)),
            vec4(subgroupBroadcast(v.z, 0u), subgroupBroadcast(v.z, 1u), subgroupBroadcast(v.z, 2u), subgroupBroadcast(v.z, 3u)),
            vec4(subgroupBroadcast(v.w, 0u), subgroupBroadcast(v.w, 1u), subgroupBroadcast(v.w, 2u), subgroupBroadcast(v.w, 3u)),
            vec4(subgroupBroadcast(v.x, 4u), subgroupBroadcast(v.x, 5u), subgroupBroadcast(v.x, 6u), subgroupBroadcast(v.x, 7u)),
            vec4(subgroupBroadcast(v.y, 4u), subgroupBroadcast(v.y, 5u), subgroupBroadcast(v.y, 6u), subgroupBroadcast(v.y, 7u)),
            vec4(subgroupBroadcast(v.z, 4u), subgroupBroadcast(v.z, 5u), subgroupBroadcast(v.z, 6u), subgroupBroadcast(v.z, 7u)),
            vec4(subgroupBroadcast(v.w, 4u), subgroupBroadcast(v.w, 5u), subgroupBroadcast(v.w, 6u), subgroupBroadcast(v.w, 7u)),
        );
    }
    return array<vec4<f32>, 8>(
        subgroupBroadcast(v, 0u), subgroupBroadcast(v, 1u), subgroupBroadcast(v, 2u), subgroupBroadcast(v, 3u),
        subgroupBroadcast(v, 4u), subgroupBroadcast(v, 5u), subgroupBroadcast(v, 6u), subgroupBroadcast(v, 7u),
    );
}

/// The 16 rows of `v` (one per lane of a 16-wide subgroup) as k-vectors, to every lane.
fn a_rows16(v: vec4<f32>) -> array<vec4<f32>, 16> {
    if (TRANS_A) {
        // Row r at k q sits in lane q + 4 * (r / 4), component r % 4.
        return array<vec4<f32>, 16>(
            vec4(subgroupBroadcast(v.x, 0u), subgroupBroadcast(v.x, 1u), subgroupBroadcast(v.x, 2u), subgroupBroadcast(v.x, 3u)),
            vec4(subgroupBroadcast(v.y, 0u), subgroupBroadcast(v.y, 1u), subgroupBroadcast(v.y, 2u), subgroupBroadcast(v.y, 3u)),
            vec4(subgroupBroadcast(v.z, 0u), subgroupBroadcast(v.z, 1u), subgroupBroadcast(v.z, 2u), subgroupBroadcast(v.z, 3u)),
            vec4(subgroupBroadcast(v.w, 0u), subgroupBroadcast(v.w, 1u), subgroupBroadcast(v.w, 2u), subgroupBroadcast(v.w, 3u)),
            vec4(subgroupBroadcast(v.x, 4u), subgroupBroadcast(v.x, 5u), subgroupBroadcast(v.x, 6u), subgroupBroadcast(v.x, 7u)),
            vec4(subgroupBroadcast(v.y, 4u), subgroupBroadcast(v.y, 5u), subgroupBroadcast(v.y, 6u), subgroupBroadcast(v.y, 7u)),
            vec4(subgroupBroadcast(v.z, 4u), subgroupBroadcast(v.z, 5u), subgroupBroadcast(v.z, 6u), subgroupBroadcast(v.z, 7u)),
            vec4(subgroupBroadcast(v.w, 4u), subgroupBroadcast(v.w, 5u), subgroupBroadcast(v.w, 6u), subgroupBroadcast(v.w, 7u)),
            vec4(subgroupBroadcast(v.x, 8u), subgroupBroadcast(v.x, 9u), subgroupBroadcast(v.x, 10u), subgroupBroadcast(v.x, 11u)),
            vec4(subgroupBroadcast(v.y, 8u), subgroupBroadcast(v.y, 9u), subgroupBroadcast(v.y, 10u), subgroupBroadcast(v.y, 11u)),
            vec4(subgroupBroadcast(v.z, 8u), subgroupBroadcast(v.z, 9u), subgroupBroadcast(v.z, 10u), subgroupBroadcast(v.z, 11u)),
            vec4(subgroupBroadcast(v.w, 8u), subgroupBroadcast(v.w, 9u), subgroupBroadcast(v.w, 10u), subgroupBroadcast(v.w, 11u)),
            vec4(subgroupBroadcast(v.x, 12u), subgroupBroadcast(v.x, 13u), subgroupBroadcast(v.x, 14u), subgroupBroadcast(v.x, 15u)),
            vec4(subgroupBroadcast(v.y, 12u), subgroupBroadcast(v.y, 13u), subgroupBroadcast(v.y, 14u), subgroupBroadcast(v.y, 15u)),
            vec4(subgroupBroadcast(v.z, 12u), subgroupBroadcast(v.z, 13u), subgroupBroadcast(v.z, 14u), subgroupBroadcast(v.z, 15u)),
            vec4(subgroupBroadcast(v.w, 12u), subgroupBroadcast(v.w, 13u), subgroupBroadcast(v.w, 14u), subgroupBroadcast(v.w, 15u)),
        );
    }
    return array<vec4<f32>, 16>(
        subgroupBroadcast(v, 0u), subgroupBroadcast(v, 1u), subgroupBroadcast(v, 2u), subgroupBroadcast(v, 3u),
        subgroupBroadcast(v, 4u), subgroupBroadcast(v, 5u), subgroupBroadcast(v, 6u), subgroupBroadcast(v, 7u),
        subgroupBroadcast(v, 8u), subgroupBroadcast(v, 9u), subgroupBroadcast(v, 10u), subgroupBroadcast(v, 11u),
        subgroupBroadcast(v, 12u), subgroupBroadcast(v, 13u), subgroupBroadcast(v, 14u), subgroupBroadcast(v, 15u),
    );
}

fn fetch(x: u32, y: u32) -> vec4<f32> {
    return textureLoad(bt, vec2<u32>(min(x, p.tex_width - 1u), min(y, p.tex_height - 1u)), 0);
}

/// op(B)[4 kq + q, col .. col + 4] for q = 0..3, from the texture (origin texel bx, by).
fn b_rows(bx: u32, by: u32, kq: u32, col: u32) -> array<vec4<f32>, 4> {
    if (TRANS_B) {
        // Texture rows are columns of op(B); each texel holds 4 consecutive k.
        let n_last = p.n - 1u;
        let t0 = fetch(bx + kq, by + min(col, n_last));
        let t1 = fetch(bx + kq, by + min(col + 1u, n_last));
        let t2 = fetch(bx + kq, by + min(col + 2u, n_last));
        let t3 = fetch(bx + kq, by + min(col + 3u, n_last));
        return array<vec4<f32>, 4>(
            vec4(t0.x, t1.x, t2.x, t3.x),
            vec4(t0.y, t1.y, t2.y, t3.y),
            vec4(t0.z, t1.z, t2.z, t3.z),
            vec4(t0.w, t1.w, t2.w, t3.w),
        );
    }
    let x = bx + col / 4u;
    let y = by + kq * 4u;
    return array<vec4<f32>, 4>(fetch(x, y), fetch(x, y + 1u), fetch(x, y + 2u), fetch(x, y + 3u));
}

fn mac(acc: vec4<f32>, a_k: vec4<f32>, b: array<vec4<f32>, 4>) -> vec4<f32> {
    return fma(vec4(a_k.w), b[3], fma(vec4(a_k.z), b[2], fma(vec4(a_k.y), b[1], fma(vec4(a_k.x), b[0], acc))));
}

fn store_row(base: u32, row: u32, col: u32, v: vec4<f32>) {
    if (row >= p.m) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        let cc = col + j;
        if (cc < p.n) {
            store_c(base + row * p.ldc + cc, cc, v[j]);
        }
    }
}

/// One step of 4 along K: every lane's 16 x 4 block gains op(A)[rows, 4 k] op(B)[4 k, cols].
fn k_step(acc: ptr<function, array<vec4<f32>, 16>>, a_base: u32, row0: u32, lane: u32, bx: u32,
          by: u32, col: u32, kq: u32) {
    let b = b_rows(bx, by, kq, col);
    if SG == 16u {
        // One load per lane covers all 16 rows.
        let rows = a_rows16(a_vec(a_base, row0, lane, kq));
        (*acc)[0] = mac((*acc)[0], rows[0], b);
        (*acc)[1] = mac((*acc)[1], rows[1], b);
        (*acc)[2] = mac((*acc)[2], rows[2], b);
        (*acc)[3] = mac((*acc)[3], rows[3], b);
        (*acc)[4] = mac((*acc)[4], rows[4], b);
        (*acc)[5] = mac((*acc)[5], rows[5], b);
        (*acc)[6] = mac((*acc)[6], rows[6], b);
        (*acc)[7] = mac((*acc)[7], rows[7], b);
        (*acc)[8] = mac((*acc)[8], rows[8], b);
        (*acc)[9] = mac((*acc)[9], rows[9], b);
        (*acc)[10] = mac((*acc)[10], rows[10], b);
        (*acc)[11] = mac((*acc)[11], rows[11], b);
        (*acc)[12] = mac((*acc)[12], rows[12], b);
        (*acc)[13] = mac((*acc)[13], rows[13], b);
        (*acc)[14] = mac((*acc)[14], rows[14], b);
        (*acc)[15] = mac((*acc)[15], rows[15], b);
        return;
    }
    let lo = a_rows(a_vec(a_base, row0, lane, kq));
    let hi = a_rows(a_vec(a_base, row0 + 8u, lane, kq));
    (*acc)[0] = mac((*acc)[0], lo[0], b);
    (*acc)[1] = mac((*acc)[1], lo[1], b);
    (*acc)[2] = mac((*acc)[2], lo[2], b);
    (*acc)[3] = mac((*acc)[3], lo[3], b);
    (*acc)[4] = mac((*acc)[4], lo[4], b);
    (*acc)[5] = mac((*acc)[5], lo[5], b);
    (*acc)[6] = mac((*acc)[6], lo[6], b);
    (*acc)[7] = mac((*acc)[7], lo[7], b);
    (*acc)[8] = mac((*acc)[8], hi[0], b);
    (*acc)[9] = mac((*acc)[9], hi[1], b);
    (*acc)[10] = mac((*acc)[10], hi[2], b);
    (*acc)[11] = mac((*acc)[11], hi[3], b);
    (*acc)[12] = mac((*acc)[12], hi[4], b);
    (*acc)[13] = mac((*acc)[13], hi[5], b);
    (*acc)[14] = mac((*acc)[14], hi[6], b);
    (*acc)[15] = mac((*acc)[15], hi[7], b);
}

@compute @workgroup_size(CHUNKS * SG)
fn matmul_subgroup(@builtin(workgroup_id) wid: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32,
                   @builtin(subgroup_invocation_id) lane: u32) {
    let row0 = (wid.y * CHUNKS + lid / SG) * 16u;
    let col = wid.x * (4u * SG) + lane * 4u;
    let origins = batch_origins(wid.z);
    let a_base = origins.a;
    let b_base = origins.b;
    let c_base = origins.c;
    let bx = (b_base % p.ldb) / 4u;
    let by = b_base / p.ldb;

    var acc: array<vec4<f32>, 16>;
    // Eight (then four) steps of K per iteration into a copy of the accumulators: on CPU
    // adapters every value carried around a loop is written back under the invocation mask,
    // so carrying the accumulators once per eight steps saves most of those masked writes
    // (measured: matmul 1024^3 about 20% faster than one step per iteration).
    let kq_end = p.k / 4u;
    var kq = 0u;
    for (; kq + 8u <= kq_end; kq += 8u) {
        var t = acc;
        k_step(&t, a_base, row0, lane, bx, by, col, kq + 0u);
        k_step(&t, a_base, row0, lane, bx, by, col, kq + 1u);
        k_step(&t, a_base, row0, lane, bx, by, col, kq + 2u);
        k_step(&t, a_base, row0, lane, bx, by, col, kq + 3u);
        k_step(&t, a_base, row0, lane, bx, by, col, kq + 4u);
        k_step(&t, a_base, row0, lane, bx, by, col, kq + 5u);
        k_step(&t, a_base, row0, lane, bx, by, col, kq + 6u);
        k_step(&t, a_base, row0, lane, bx, by, col, kq + 7u);
        acc = t;
    }
    for (; kq + 4u <= kq_end; kq += 4u) {
        var t = acc;
        k_step(&t, a_base, row0, lane, bx, by, col, kq);
        k_step(&t, a_base, row0, lane, bx, by, col, kq + 1u);
        k_step(&t, a_base, row0, lane, bx, by, col, kq + 2u);
        k_step(&t, a_base, row0, lane, bx, by, col, kq + 3u);
        acc = t;
    }
    for (; kq < kq_end; kq++) {
        k_step(&acc, a_base, row0, lane, bx, by, col, kq);
    }
    store_row(c_base, row0, col, acc[0]);
    store_row(c_base, row0 + 1u, col, acc[1]);
    store_row(c_base, row0 + 2u, col, acc[2]);
    store_row(c_base, row0 + 3u, col, acc[3]);
    store_row(c_base, row0 + 4u, col, acc[4]);
    store_row(c_base, row0 + 5u, col, acc[5]);
    store_row(c_base, row0 + 6u, col, acc[6]);
    store_row(c_base, row0 + 7u, col, acc[7]);
    store_row(c_base, row0 + 8u, col, acc[8]);
    store_row(c_base, row0 + 9u, col, acc[9]);
    store_row(c_base, row0 + 10u, col, acc[10]);
    store_row(c_base, row0 + 11u, col, acc[11]);
    store_row(c_base, row0 + 12u, col, acc[12]);
    store_row(c_base, row0 + 13u, col, acc[13]);
    store_row(c_base, row0 + 14u, col, acc[14]);
    store_row(c_base, row0 + 15u, col, acc[15]);
}
