// Embedding lookup and its gradient.
//   embedding_forward:  out[t, j] = table[ids[t], j]           (ids clamped to vocab - 1)
//   embedding_backward: dtable[uniq[u], j] += sum_{k in offsets[u] .. offsets[u+1]}
//                                              dout[positions[k], j]
// The backward is deterministic and correct when one id repeats: the host groups the
// token positions by id (uniq ids, CSR offsets, positions sorted by id), so every table row
// is summed by exactly one invocation, without atomics. Rows of unused ids are untouched.
// Bindings: 0 params, 1 ids (u32), 2 table, 3 out, 4 uniq (u32), 5 offsets (u32),
// 6 positions (u32), 7 dout, 8 dtable; forward uses 1-3, backward 4-8.
// Dispatch: forward covers tokens * dim items, backward n_unique * dim items; ceil(items/WG)
// workgroups folded into x * y when large (linear_index from lib/index.wgsl, prepended).

struct Params {
    tokens: u32,
    dim: u32,
    vocab: u32,
    n_unique: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> table: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> uniq: array<u32>;
@group(0) @binding(5) var<storage, read> offsets: array<u32>;
@group(0) @binding(6) var<storage, read> positions: array<u32>;
@group(0) @binding(7) var<storage, read> dout: array<f32>;
@group(0) @binding(8) var<storage, read_write> dtable: array<f32>;

override WG: u32 = 256;

@compute @workgroup_size(WG)
fn embedding_forward(@builtin(workgroup_id) wid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i < p.tokens * p.dim) {
        let t = i / p.dim;
        let j = i % p.dim;
        let id = min(ids[t], p.vocab - 1u);
        out[i] = table[id * p.dim + j];
    }
}

@compute @workgroup_size(WG)
fn embedding_backward(@builtin(workgroup_id) wid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i < p.n_unique * p.dim) {
        let u = i / p.dim;
        let j = i % p.dim;
        var acc = 0.0;
        for (var k = offsets[u]; k < offsets[u + 1u]; k++) {
            acc += dout[positions[k] * p.dim + j];
        }
        let row = uniq[u] * p.dim + j;
        dtable[row] = dtable[row] + acc;
    }
}
