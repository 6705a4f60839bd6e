// Task-adaptive gate: y = sigmoid(a) * h over h of shape [rows, d].
//   scalar mode (VECTOR = false): a has one logit per row, broadcast over the d features;
//   vector mode (VECTOR = true):  a has the shape of h, one logit per feature.
// Entries:
//   gate_forward:    y[r, j]  = s * h[r, j]                         with s = sigmoid(a)
//   gate_backward_h: dh[r, j] = s * dy[r, j]   (added to dh when ACCUMULATE, since the
//                    encoder output receives gradients from every task)
//   gate_backward_a: vector: da[r, j] = dy * h * s * (1 - s)
//                    scalar: da[r]    = s * (1 - s) * sum_j dy[r, j] * h[r, j]
// Bindings: 0 params, 1 a, 2 h, 3 dy, 4 out (y or dh), 5 da; each entry uses its subset.
// Dispatch: elementwise entries and vector-mode gate_backward_a cover rows * d items, scalar
// gate_backward_a covers rows items (one invocation sums one row); ceil(items / WG)
// workgroups folded into x * y when large (linear_index from lib/index.wgsl, prepended).

struct Params {
    rows: u32,
    d: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> h: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read_write> da: array<f32>;

override WG: u32 = 256;
override VECTOR: bool = false;
override ACCUMULATE: bool = false;

fn gate_of(i: u32) -> f32 {
    let logit = select(a[i / p.d], a[i], VECTOR);
    return 1.0 / (1.0 + exp(-logit));
}

@compute @workgroup_size(WG)
fn gate_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i < p.rows * p.d) {
        out[i] = gate_of(i) * h[i];
    }
}

@compute @workgroup_size(WG)
fn gate_backward_h(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i < p.rows * p.d) {
        let g = gate_of(i) * dy[i];
        if (ACCUMULATE) {
            out[i] = out[i] + g;
        } else {
            out[i] = g;
        }
    }
}

@compute @workgroup_size(WG)
fn gate_backward_a(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (VECTOR) {
        if (i < p.rows * p.d) {
            let s = gate_of(i);
            da[i] = dy[i] * h[i] * s * (1.0 - s);
        }
    } else {
        if (i < p.rows) {
            let base = i * p.d;
            var acc = 0.0;
            for (var j = 0u; j < p.d; j++) {
                acc += dy[base + j] * h[base + j];
            }
            let s = gate_of(base);
            da[i] = acc * s * (1.0 - s);
        }
    }
}
