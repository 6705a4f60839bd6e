// Dropout with a counter-based hash, so the mask is never stored and is the same on every
// adapter: keep element i when hash(hash(i) ^ seed) >= threshold (threshold = p * 2^32), and
//   out[i] = x[i] * keep(i) * scale        with scale = 1 / (1 - p).
// The backward is the same call on dy with the same seed. `seed` is mixed on the host from
// the model seed, the step and the dropout site. hash() is Chris Wellons' lowbias32
// (lib/dropout_hash.wgsl; linear_index from lib/index.wgsl; both prepended).
// dropout4 does the same on vec4s (n % 4 == 0) with the same per-element mask.
// Bindings: 0 params, 1 x, 2 out, 3 x4, 4 out4.
// Dispatch: ceil(n / WG) workgroups (dropout4: ceil(n / 4 / WG)), folded into x * y.

struct Params {
    n: u32,
    seed: u32,
    threshold: u32,
    scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> out4: array<vec4<f32>>;

override WG: u32 = 256;

@compute @workgroup_size(WG)
fn dropout(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i < p.n) {
        let keep = dropout_keeps(i, p.seed, p.threshold);
        out[i] = select(0.0, x[i] * p.scale, keep);
    }
}

fn keep(i: u32) -> f32 {
    return select(0.0, p.scale, dropout_keeps(i, p.seed, p.threshold));
}

@compute @workgroup_size(WG)
fn dropout4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let j = linear_index(wid, nwg, lid);
    if (j < p.n / 4u) {
        let i = 4u * j;
        out4[j] = x4[j] * vec4(keep(i), keep(i + 1u), keep(i + 2u), keep(i + 3u));
    }
}
