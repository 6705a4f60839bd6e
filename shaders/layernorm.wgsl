// LayerNorm over the last dimension and its backward.
//   layernorm_forward:  mean = sum(x) / d;  var = sum((x - mean)^2) / d   (two passes, biased
//                       variance as PyTorch); rstd = 1 / sqrt(var + eps);
//                       y = (x - mean) * rstd * gamma + beta; mean and rstd saved per row.
//   layernorm_backward_input: with xhat = (x - mean) * rstd and g = dy * gamma,
//                       dx = rstd * (g - mean(g) - xhat * mean(g * xhat))
//   layernorm_backward_params: partial column sums over a chunk of chunk_rows rows,
//                       pgamma[c, j] = sum dy * xhat, pbeta[c, j] = sum dy; the host sums
//                       the chunks with the column-sum kernel.
//   With HAS_RESIDUAL the forward normalizes x + res (the residual connection fused in) and
//   writes that sum too (the backward needs it); each invocation reads back only what it
//   wrote itself, so no barrier is needed.
//   *_rows variants: the same forward and backward_input with one invocation per row and
//                       vec4 loads (d % 4 == 0), no workgroup memory and no barriers: the
//                       fast form on CPU adapters, where barriers are expensive.
// Bindings: 0 params, 1 x, 2 gamma, 3 beta, 4 y, 5 mean, 6 rstd, 7 dy, 8 dx, 9 pgamma,
// 10 pbeta, and vec4 views for the row variants: 11 x4, 12 gamma4, 13 beta4, 14 y4, 15 dy4,
// 16 dx4, and for the residual 17 res, 18 sum, 19 res4, 20 sum4; each entry uses its subset
// in binding order.
// Dispatch: forward and backward_input run one workgroup of WG invocations (a power of two)
// per row (rows folded into x * y); the row variants ceil(rows / WG) workgroups (folded);
// backward_params runs (ceil(d / WG), chunks) workgroups, one invocation per column and chunk.
// Prepended from lib/: index.wgsl and workgroup_reduce.wgsl.

struct Params {
    rows: u32,
    d: u32,
    eps: f32,
    chunk_rows: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> rstd: array<f32>;
@group(0) @binding(7) var<storage, read> dy: array<f32>;
@group(0) @binding(8) var<storage, read_write> dx: array<f32>;
@group(0) @binding(9) var<storage, read_write> pgamma: array<f32>;
@group(0) @binding(10) var<storage, read_write> pbeta: array<f32>;
@group(0) @binding(11) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(12) var<storage, read> gamma4: array<vec4<f32>>;
@group(0) @binding(13) var<storage, read> beta4: array<vec4<f32>>;
@group(0) @binding(14) var<storage, read_write> y4: array<vec4<f32>>;
@group(0) @binding(15) var<storage, read> dy4: array<vec4<f32>>;
@group(0) @binding(16) var<storage, read_write> dx4: array<vec4<f32>>;
@group(0) @binding(17) var<storage, read> res: array<f32>;
@group(0) @binding(18) var<storage, read_write> sum: array<f32>;
@group(0) @binding(19) var<storage, read> res4: array<vec4<f32>>;
@group(0) @binding(20) var<storage, read_write> sum4: array<vec4<f32>>;

override WG: u32 = 128;
override HAS_RESIDUAL: bool = false;

// red (WG floats) is declared by lib/workgroup_reduce.wgsl; reduce_sum2 pairs it with red2.
var<workgroup> red2: array<f32, WG>;

fn reduce_sum2(lid: u32, v: vec2<f32>) -> vec2<f32> {
    red[lid] = v.x;
    red2[lid] = v.y;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            red[lid] = red[lid] + red[lid + s];
            red2[lid] = red2[lid] + red2[lid + s];
        }
        workgroupBarrier();
    }
    let r = vec2<f32>(red[0], red2[0]);
    workgroupBarrier();
    return r;
}

/// The normalized input at `i`: x, or the sum x + res written by the first pass.
fn input(i: u32) -> f32 {
    if (HAS_RESIDUAL) {
        return sum[i];
    }
    return x[i];
}

fn input4(i: u32) -> vec4<f32> {
    if (HAS_RESIDUAL) {
        return sum4[i];
    }
    return x4[i];
}

@compute @workgroup_size(WG)
fn layernorm_forward(@builtin(workgroup_id) wid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let row = workgroup_index(wid, nwg);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.d;
    var s = 0.0;
    for (var j = lid; j < p.d; j += WG) {
        var v = x[base + j];
        if (HAS_RESIDUAL) {
            v += res[base + j];
            sum[base + j] = v;
        }
        s += v;
    }
    let mu = workgroup_reduce(lid, s, false) / f32(p.d);
    var q = 0.0;
    for (var j = lid; j < p.d; j += WG) {
        let c = input(base + j) - mu;
        q += c * c;
    }
    let r = inverseSqrt(workgroup_reduce(lid, q, false) / f32(p.d) + p.eps);
    for (var j = lid; j < p.d; j += WG) {
        y[base + j] = (input(base + j) - mu) * r * gamma[j] + beta[j];
    }
    if (lid == 0u) {
        mean[row] = mu;
        rstd[row] = r;
    }
}

@compute @workgroup_size(WG)
fn layernorm_backward_input(@builtin(workgroup_id) wid: vec3<u32>,
                            @builtin(num_workgroups) nwg: vec3<u32>,
                            @builtin(local_invocation_index) lid: u32) {
    let row = workgroup_index(wid, nwg);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.d;
    let mu = mean[row];
    let r = rstd[row];
    var acc = vec2<f32>(0.0, 0.0);
    for (var j = lid; j < p.d; j += WG) {
        let g = dy[base + j] * gamma[j];
        let xhat = (x[base + j] - mu) * r;
        acc += vec2<f32>(g, g * xhat);
    }
    let sums = reduce_sum2(lid, acc) / f32(p.d);
    for (var j = lid; j < p.d; j += WG) {
        let g = dy[base + j] * gamma[j];
        let xhat = (x[base + j] - mu) * r;
        dx[base + j] = r * (g - sums.x - xhat * sums.y);
    }
}

@compute @workgroup_size(WG)
fn layernorm_backward_params(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    let chunk = gid.y;
    if (j >= p.d) {
        return;
    }
    let start = chunk * p.chunk_rows;
    let end = min(start + p.chunk_rows, p.rows);
    var sg = 0.0;
    var sb = 0.0;
    for (var row = start; row < end; row++) {
        let g = dy[row * p.d + j];
        sg += g * (x[row * p.d + j] - mean[row]) * rstd[row];
        sb += g;
    }
    pgamma[chunk * p.d + j] = sg;
    pbeta[chunk * p.d + j] = sb;
}

fn hsum(v: vec4<f32>) -> f32 {
    return v.x + v.y + v.z + v.w;
}

@compute @workgroup_size(WG)
fn layernorm_forward_rows(@builtin(workgroup_id) wid: vec3<u32>,
                          @builtin(num_workgroups) nwg: vec3<u32>,
                          @builtin(local_invocation_index) lid: u32) {
    let row = linear_index(wid, nwg, lid);
    if (row >= p.rows) {
        return;
    }
    let d4 = p.d / 4u;
    let base = row * d4;
    var s = vec4<f32>(0.0);
    for (var j = 0u; j < d4; j++) {
        var v = x4[base + j];
        if (HAS_RESIDUAL) {
            v += res4[base + j];
            sum4[base + j] = v;
        }
        s += v;
    }
    let mu = hsum(s) / f32(p.d);
    var q = vec4<f32>(0.0);
    for (var j = 0u; j < d4; j++) {
        let c = input4(base + j) - vec4(mu);
        q += c * c;
    }
    let r = inverseSqrt(hsum(q) / f32(p.d) + p.eps);
    for (var j = 0u; j < d4; j++) {
        y4[base + j] = (input4(base + j) - vec4(mu)) * r * gamma4[j] + beta4[j];
    }
    mean[row] = mu;
    rstd[row] = r;
}

@compute @workgroup_size(WG)
fn layernorm_backward_input_rows(@builtin(workgroup_id) wid: vec3<u32>,
                                 @builtin(num_workgroups) nwg: vec3<u32>,
                                 @builtin(local_invocation_index) lid: u32) {
    let row = linear_index(wid, nwg, lid);
    if (row >= p.rows) {
        return;
    }
    let d4 = p.d / 4u;
    let base = row * d4;
    let mu = mean[row];
    let r = rstd[row];
    var sg = vec4<f32>(0.0);
    var sgx = vec4<f32>(0.0);
    for (var j = 0u; j < d4; j++) {
        let g = dy4[base + j] * gamma4[j];
        sg += g;
        sgx += g * (x4[base + j] - vec4(mu)) * r;
    }
    let mg = hsum(sg) / f32(p.d);
    let mgx = hsum(sgx) / f32(p.d);
    for (var j = 0u; j < d4; j++) {
        let g = dy4[base + j] * gamma4[j];
        let xhat = (x4[base + j] - vec4(mu)) * r;
        dx4[base + j] = r * (g - vec4(mg) - xhat * mgx);
    }
}
