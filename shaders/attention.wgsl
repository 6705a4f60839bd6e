// Fused multi-head attention forward, for inference (no backward follows):
//   context[b*T + i, h*dh + c] = sum_j softmax_j(scale * q_i . k_j + mask[b, j]) * v_j[c]
// with q, k and v read in place from the fused projection qkv [B*T, 3d] (column blocks
// Q | K | V, head h at columns h*dh of each block) and the context written [B*T, d] in the
// head-interleaved layout the output projection reads. One pass: the scores and the
// probabilities never reach memory (the unfused path of the training forward writes and
// reads B*H*T*T floats, twice over).
// Online softmax: a running maximum and sum, rescaling the accumulator as the maximum
// grows, so each key and value is read once per query. Keys whose logit is -inf or below
// -3e38 are skipped; a query with no key left gets zeros (as softmax.wgsl does).
// Layout: vec4 views, so d and dh must be multiples of 4, and dh <= 4 * MAX_DH4 = 128.
// Bindings: 0 params, 1 qkv (vec4), 2 mask [B, T] (not read unless HAS_MASK), 3 context
// (vec4).
// Dispatch: (ceil(T / WG), heads, batch) workgroups of WG invocations, one query each. The
// invocations of a workgroup share (b, h) and walk the same keys and values in step
// (broadcast loads served from cache). The override DH4 = dh / 4 fixes the inner loop
// bounds at pipeline creation, so the compiler can keep q and the accumulator in registers.
// Meant for GPUs: on CPU adapters the unfused chain is faster (ops::attention::fused_preferred).

struct Params {
    seq: u32,
    d4: u32,
    scale: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> mask: array<f32>;
@group(0) @binding(3) var<storage, read_write> context: array<vec4<f32>>;

override WG: u32 = 64;
override DH4: u32 = 8;
override HAS_MASK: bool = false;

const MAX_DH4: u32 = 32u;
const NEG_HUGE: f32 = -3.0e38;

@compute @workgroup_size(WG)
fn attention_forward_fused(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    // No early return and no branch around the key loop: invocations past the last query
    // compute a copy of it and skip only the store. Loads whose address is the same for every
    // invocation (keys, values, mask) then stay single loads on CPU adapters, which fall back
    // to a per-lane loop for any load inside divergent control flow.
    let i_real = wid.x * WG + lid.x;
    let i = min(i_real, p.seq - 1u);
    let h = wid.y;
    let b = wid.z;
    let row = 3u * p.d4;
    let q_at = (b * p.seq + i) * row + h * DH4;
    var q: array<vec4<f32>, MAX_DH4>;
    var acc: array<vec4<f32>, MAX_DH4>;
    for (var c = 0u; c < DH4; c++) {
        q[c] = qkv[q_at + c] * p.scale;
        acc[c] = vec4<f32>(0.0);
    }
    var running_max = NEG_HUGE;
    var running_sum = 0.0;
    let first_key = b * p.seq * row + p.d4 + h * DH4;
    for (var j = 0u; j < p.seq; j++) {
        let k_at = first_key + j * row;
        var s = 0.0;
        for (var c = 0u; c < DH4; c++) {
            s += dot(q[c], qkv[k_at + c]);
        }
        if HAS_MASK {
            s += mask[b * p.seq + j];
        }
        // A masked key (logit -inf or below -3e38) changes nothing; NaN propagates.
        let live = !(s <= NEG_HUGE);
        let new_max = select(running_max, max(running_max, s), live);
        let rescale = exp(running_max - new_max);
        let weight = select(0.0, exp(s - new_max), live);
        running_sum = running_sum * rescale + weight;
        let v_at = k_at + p.d4;
        for (var c = 0u; c < DH4; c++) {
            acc[c] = acc[c] * rescale + weight * qkv[v_at + c];
        }
        running_max = new_max;
    }
    let inv = select(0.0, 1.0 / running_sum, running_sum > 0.0);
    if i_real < p.seq {
        let out_at = (b * p.seq + i) * p.d4 + h * DH4;
        for (var c = 0u; c < DH4; c++) {
            context[out_at + c] = acc[c] * inv;
        }
    }
}
