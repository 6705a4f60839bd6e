// Reductions.
//   colsum:      out[c, j] = sum_{r in chunk c} x[r, j] over x of shape [rows, cols], chunk c
//                covering rows [c * chunk_rows, min((c + 1) * chunk_rows, rows)); with
//                ACCUMULATE the sum is added to out (used for the single final chunk).
//                Bias gradients and LayerNorm parameter gradients end here.
//   sum_strided: out[t] = sum_{i = t, t + T, t + 2T, ... < n} f(x[i]) for T = the number of
//                invocations launched, with f(v) = v * v when SQUARE (sum of squares for the
//                gradient norm) and f(v) = v otherwise. Repeated until one value is left.
//   sum_strided4: the same reading vec4s (n % 4 == 0; `rows` counts vec4s).
//   dot_strided: out[t] = sum_{i = t, t + T, ... < n} x[i] * y[i] (the first pass of an inner
//                product of two task gradients; sum_strided finishes it).
// Bindings: 0 params, 1 x, 2 out, 3 x4, 4 y.
// Dispatch: colsum (ceil(cols / WG), chunks) workgroups, one invocation per column and chunk;
// sum_strided ceil(T / WG) workgroups in x.

struct Params {
    rows: u32,
    cols: u32,
    chunk_rows: u32,
    threads: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> y: array<f32>;

override WG: u32 = 64;
override ACCUMULATE: bool = false;
override SQUARE: bool = false;

@compute @workgroup_size(WG)
fn colsum(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    let chunk = gid.y;
    if (j >= p.cols) {
        return;
    }
    let start = chunk * p.chunk_rows;
    let end = min(start + p.chunk_rows, p.rows);
    var acc = 0.0;
    for (var r = start; r < end; r++) {
        acc += x[r * p.cols + j];
    }
    let o = chunk * p.cols + j;
    if (ACCUMULATE) {
        out[o] = out[o] + acc;
    } else {
        out[o] = acc;
    }
}

// Here `rows` is n, the number of elements, and `threads` is T.
@compute @workgroup_size(WG)
fn sum_strided(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    if (t >= p.threads) {
        return;
    }
    var acc = 0.0;
    for (var i = t; i < p.rows; i += p.threads) {
        let v = x[i];
        acc += select(v, v * v, SQUARE);
    }
    out[t] = acc;
}

// Here `rows` is the number of vec4s and `threads` is T.
@compute @workgroup_size(WG)
fn sum_strided4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    if (t >= p.threads) {
        return;
    }
    var acc = vec4<f32>(0.0);
    for (var i = t; i < p.rows; i += p.threads) {
        let v = x4[i];
        acc += select(v, v * v, SQUARE);
    }
    out[t] = acc.x + acc.y + acc.z + acc.w;
}

// Here `rows` is n and `threads` is T.
@compute @workgroup_size(WG)
fn dot_strided(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    if (t >= p.threads) {
        return;
    }
    var acc = 0.0;
    for (var i = t; i < p.rows; i += p.threads) {
        acc += x[i] * y[i];
    }
    out[t] = acc;
}
