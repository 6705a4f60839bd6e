// Row softmax with an optional additive mask and fused dropout, and its backward.
//   softmax_forward:  y[r, c] = softmax_c(scale * x[r, c] + mask[r / rows_per_mask, c])
//                     and, with HAS_DROPOUT, yd = y * keep / (1 - p) in the same pass
//   softmax_backward: with g = dy (or dy * keep / (1 - p) when HAS_DROPOUT: dy is then the
//                     gradient of the dropped probabilities),
//                     dx[r, c] = scale * y[r, c] * (g[r, c] - sum_k g[r, k] * y[r, k])
// The dropout mask is dropout.wgsl's hash of the element index (row * cols + c) and the seed
// (lib/dropout_hash.wgsl), so it matches the stand-alone kernel bit for bit and is never stored.
// Numerically stable: the row maximum is subtracted before exp. A row whose every entry is
// -inf (or below -3e38) yields zeros instead of NaN. For attention scores laid out
// [batch, heads, queries, keys] with a key-padding mask [batch, keys], rows_per_mask is
// heads * queries; with HAS_MASK = false the mask binding is not read.
//   CAUSAL: row r holds query i = r % queries of a [queries, cols] block, and key c is
//   masked (as -inf) when c > i + cols - queries: the last query sees every key, earlier
//   ones one fewer each (decoder self-attention: queries == cols, query i sees keys 0..=i;
//   the same rule serves a block of new queries after cols - queries cached keys).
//   *_rows variants: the same with one invocation per row and vec4 loads (cols % 4 == 0), no
//   workgroup memory and no barriers (the fast form on CPU adapters); the forward takes the
//   maximum and the sum in one pass (online softmax).
// Bindings: 0 params, 1 x, 2 mask, 3 y, 4 dy, 5 dx, 6 yd, and vec4 views 7 x4, 8 mask4,
// 9 y4, 10 dy4, 11 dx4, 12 yd4; each entry uses its subset in binding order.
// Dispatch: one workgroup of WG invocations (a power of two) per row, rows folded into
// x * y when many; the workgroup reduces max and sum through workgroup memory. The row
// variants run ceil(rows / WG) workgroups, folded likewise. Prepended from lib/:
// dropout_hash.wgsl, index.wgsl and workgroup_reduce.wgsl (the reduction and its array red).

struct Params {
    rows: u32,
    cols: u32,
    rows_per_mask: u32,
    scale: f32,
    seed: u32,
    threshold: u32,
    drop_scale: f32,
    queries: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> mask: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;
@group(0) @binding(6) var<storage, read_write> yd: array<f32>;
@group(0) @binding(7) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read> mask4: array<vec4<f32>>;
@group(0) @binding(9) var<storage, read_write> y4: array<vec4<f32>>;
@group(0) @binding(10) var<storage, read> dy4: array<vec4<f32>>;
@group(0) @binding(11) var<storage, read_write> dx4: array<vec4<f32>>;
@group(0) @binding(12) var<storage, read_write> yd4: array<vec4<f32>>;

override WG: u32 = 128;
override HAS_MASK: bool = false;
override HAS_DROPOUT: bool = false;
override CAUSAL: bool = false;

const NEG_HUGE: f32 = -3.0e38;
/// A causally masked logit: below NEG_HUGE, so it counts as -inf.
const MASKED: f32 = -3.4e38;

/// The dropout factor of element `i`: 0 or 1 / (1 - p).
fn keep(i: u32) -> f32 {
    return select(0.0, p.drop_scale, dropout_keeps(i, p.seed, p.threshold));
}

fn keep4(i: u32) -> vec4<f32> {
    return vec4(keep(i), keep(i + 1u), keep(i + 2u), keep(i + 3u));
}

/// The last key query row `row` may see under CAUSAL (plus one, to stay unsigned).
fn visible_keys(row: u32) -> u32 {
    return row % p.queries + 1u + p.cols - p.queries;
}

fn logit(row: u32, c: u32) -> f32 {
    var v = p.scale * x[row * p.cols + c];
    if (HAS_MASK) {
        v += mask[(row / p.rows_per_mask) * p.cols + c];
    }
    if (CAUSAL && c >= visible_keys(row)) {
        v = MASKED;
    }
    return v;
}

@compute @workgroup_size(WG)
fn softmax_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let row = workgroup_index(wid, nwg);
    if (row >= p.rows) {
        return;
    }
    var m = NEG_HUGE;
    for (var c = lid; c < p.cols; c += WG) {
        m = max(m, logit(row, c));
    }
    m = workgroup_reduce(lid, m, true);
    var s = 0.0;
    if (m > NEG_HUGE) {
        for (var c = lid; c < p.cols; c += WG) {
            s += exp(logit(row, c) - m);
        }
    }
    s = workgroup_reduce(lid, s, false);
    let inv = select(0.0, 1.0 / s, s > 0.0);
    for (var c = lid; c < p.cols; c += WG) {
        var v = 0.0;
        if (m > NEG_HUGE) {
            v = exp(logit(row, c) - m) * inv;
        }
        let i = row * p.cols + c;
        y[i] = v;
        if (HAS_DROPOUT) {
            yd[i] = v * keep(i);
        }
    }
}

@compute @workgroup_size(WG)
fn softmax_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let row = workgroup_index(wid, nwg);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.cols;
    var dot = 0.0;
    for (var c = lid; c < p.cols; c += WG) {
        var g = dy[base + c];
        if (HAS_DROPOUT) {
            g *= keep(base + c);
        }
        dot += g * y[base + c];
    }
    dot = workgroup_reduce(lid, dot, false);
    for (var c = lid; c < p.cols; c += WG) {
        var g = dy[base + c];
        if (HAS_DROPOUT) {
            g *= keep(base + c);
        }
        dx[base + c] = p.scale * y[base + c] * (g - dot);
    }
}

fn logit4(row: u32, j: u32, c4: u32) -> vec4<f32> {
    var v = p.scale * x4[row * c4 + j];
    if (HAS_MASK) {
        v += mask4[(row / p.rows_per_mask) * c4 + j];
    }
    if (CAUSAL) {
        let c = vec4(4u * j) + vec4(0u, 1u, 2u, 3u);
        v = select(v, vec4(MASKED), c >= vec4(visible_keys(row)));
    }
    return v;
}

@compute @workgroup_size(WG)
fn softmax_forward_rows(@builtin(workgroup_id) wid: vec3<u32>,
                        @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) lid: u32) {
    let row = linear_index(wid, nwg, lid);
    if (row >= p.rows) {
        return;
    }
    let c4 = p.cols / 4u;
    // Online maximum and sum: s is kept relative to the running maximum m.
    var m = NEG_HUGE;
    var s = 0.0;
    for (var j = 0u; j < c4; j++) {
        let v = logit4(row, j, c4);
        let mj = max(max(v.x, v.y), max(v.z, v.w));
        if (mj > m) {
            s *= exp(m - mj);
            m = mj;
        }
        if (m > NEG_HUGE) {
            let e = exp(v - vec4(m));
            s += e.x + e.y + e.z + e.w;
        }
    }
    let inv = select(0.0, 1.0 / s, s > 0.0);
    for (var j = 0u; j < c4; j++) {
        var out = vec4<f32>(0.0);
        if (m > NEG_HUGE) {
            out = exp(logit4(row, j, c4) - vec4(m)) * inv;
        }
        y4[row * c4 + j] = out;
        if (HAS_DROPOUT) {
            yd4[row * c4 + j] = out * keep4(row * p.cols + 4u * j);
        }
    }
}

@compute @workgroup_size(WG)
fn softmax_backward_rows(@builtin(workgroup_id) wid: vec3<u32>,
                         @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_index) lid: u32) {
    let row = linear_index(wid, nwg, lid);
    if (row >= p.rows) {
        return;
    }
    let c4 = p.cols / 4u;
    let base = row * c4;
    var acc = vec4<f32>(0.0);
    for (var j = 0u; j < c4; j++) {
        var g = dy4[base + j];
        if (HAS_DROPOUT) {
            g *= keep4(row * p.cols + 4u * j);
        }
        acc += g * y4[base + j];
    }
    let dot = acc.x + acc.y + acc.z + acc.w;
    for (var j = 0u; j < c4; j++) {
        var g = dy4[base + j];
        if (HAS_DROPOUT) {
            g *= keep4(row * p.cols + 4u * j);
        }
        let yv = y4[base + j];
        dx4[base + j] = p.scale * yv * (g - vec4(dot));
    }
}
