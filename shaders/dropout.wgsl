// Dropout with a counter-based hash, so the mask is never stored and is the same on every
// adapter: keep element i when hash(hash(i) ^ seed) >= threshold (threshold = p * 2^32), and
//   out[i] = x[i] * keep(i) * scale        with scale = 1 / (1 - p).
// The backward is the same call on dy with the same seed. `seed` is mixed on the host from
// the model seed, the step and the dropout site. hash() is Chris Wellons' lowbias32.
// Bindings: 0 params, 1 x, 2 out.
// Dispatch: ceil(n / WG) workgroups, folded into x * y when large.

struct Params {
    n: u32,
    seed: u32,
    threshold: u32,
    scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

override WG: u32 = 256;

fn lowbias32(v: u32) -> u32 {
    var h = v;
    h ^= h >> 16u;
    h *= 0x7feb352du;
    h ^= h >> 15u;
    h *= 0x846ca68bu;
    h ^= h >> 16u;
    return h;
}

@compute @workgroup_size(WG)
fn dropout(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let i = (wid.y * nwg.x + wid.x) * WG + lid;
    if (i < p.n) {
        let keep = lowbias32(lowbias32(i) ^ p.seed) >= p.threshold;
        out[i] = select(0.0, x[i] * p.scale, keep);
    }
}
