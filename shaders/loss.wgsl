// Fused losses: one pass writes each row's loss contribution and d(logits).
// The host computes the normalizer (PyTorch's "mean" reduction) and passes inv_norm = 1/N:
//   cross_entropy: N = sum over labelled rows of w[target] (w = 1 without class weights);
//   bce_with_logits: N = labelled rows * classes; mse: N = labelled rows * outputs.
// d(logits) is multiplied by grad_scale * task_weights[weight_index]: a constant (the upstream
// gradient) times the task's entry in the GPU tensor of task weights, which can change every
// step without the host reading anything back.
// Summing row_loss (reduce.wgsl) gives the loss.
//
// cross_entropy (workgroup per row, targets i32, `ignore_index` rows contribute nothing):
//   lp = log_softmax(x_r);  e = smoothing;  C = classes;  W = sum_c w[c]
//   row_loss = inv_norm * ((1 - e) * w[t] * -lp[t] + (e / C) * sum_c w[c] * -lp[c])
//   dx[c]    = grad_scale * inv_norm * ((1 - e) * w[t] * (p[c] - [c == t])
//                                       + (e / C) * (W * p[c] - w[c]))
//   (this is PyTorch's cross_entropy with weight and label_smoothing).
// bce_with_logits (invocation per row; m = row_mask[r], a 0/1 or fractional row weight;
// pw = class_weights[c], the positive weight of output c, 1 without weights; lw = 1 + (pw - 1) t):
//   row_loss = inv_norm * m * sum_c ((1 - t) x + lw * (log1p(exp(-|x|)) + max(-x, 0)))
//   dx[c]    = grad_scale * inv_norm * m * ((1 - t) - lw * sigmoid(-x))
//   (PyTorch's binary_cross_entropy_with_logits with pos_weight; pw = 1 is the plain loss)
// mse (invocation per row):
//   row_loss = inv_norm * m * sum_c (x - t)^2;   dx[c] = grad_scale * inv_norm * m * 2 (x - t)
// Bindings: 0 params, 1 logits, 2 targets (i32), 3 class_weights, 4 row_loss, 5 dlogits,
// 6 ftargets (f32, shape of logits), 7 row_mask (f32 per row), 8 task_weights.
// cross_entropy uses 1-5 and 8; bce_with_logits and mse use 1 and 3-8 (mse ignores 3).
// Dispatch: cross_entropy one workgroup of WG (a power of two) per row, rows folded into
// x * y; the others ceil(rows / WG) workgroups folded likewise. The indexing comes from
// lib/index.wgsl, the workgroup reduction from lib/workgroup_reduce.wgsl (both prepended).

struct Params {
    rows: u32,
    classes: u32,
    ignore_index: i32,
    smoothing: f32,
    inv_norm: f32,
    grad_scale: f32,
    weight_total: f32,
    weight_index: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<i32>;
@group(0) @binding(3) var<storage, read> class_weights: array<f32>;
@group(0) @binding(4) var<storage, read_write> row_loss: array<f32>;
@group(0) @binding(5) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(6) var<storage, read> ftargets: array<f32>;
@group(0) @binding(7) var<storage, read> row_mask: array<f32>;
@group(0) @binding(8) var<storage, read> task_weights: array<f32>;

override WG: u32 = 64;
override HAS_WEIGHTS: bool = false;

// The factor d(logits) is scaled by: the constant times this task's weight.
fn grad_scale() -> f32 {
    return p.grad_scale * task_weights[p.weight_index];
}

fn weight(c: u32) -> f32 {
    if (HAS_WEIGHTS) {
        return class_weights[c];
    }
    return 1.0;
}

@compute @workgroup_size(WG)
fn cross_entropy(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let row = workgroup_index(wid, nwg);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.classes;
    let label = targets[row];
    if (label == p.ignore_index || label < 0 || u32(label) >= p.classes) {
        for (var c = lid; c < p.classes; c += WG) {
            dlogits[base + c] = 0.0;
        }
        if (lid == 0u) {
            row_loss[row] = 0.0;
        }
        return;
    }
    let t = u32(label);
    var m = -3.0e38;
    for (var c = lid; c < p.classes; c += WG) {
        m = max(m, logits[base + c]);
    }
    m = workgroup_reduce(lid, m, true);
    var s = 0.0;
    for (var c = lid; c < p.classes; c += WG) {
        s += exp(logits[base + c] - m);
    }
    // log p[c] = (x[c] - m) - log(s): never add the small log(s) to a large m.
    let log_s = log(workgroup_reduce(lid, s, false));
    let e = p.smoothing;
    let inv_c = 1.0 / f32(p.classes);
    let wt = weight(t);
    let gs = grad_scale();
    var smooth_sum = 0.0;
    for (var c = lid; c < p.classes; c += WG) {
        let lp = (logits[base + c] - m) - log_s;
        let prob = exp(lp);
        let wc = weight(c);
        smooth_sum += wc * lp;
        let onehot = select(0.0, 1.0, c == t);
        let g = (1.0 - e) * wt * (prob - onehot) + e * inv_c * (p.weight_total * prob - wc);
        dlogits[base + c] = gs * p.inv_norm * g;
    }
    smooth_sum = workgroup_reduce(lid, smooth_sum, false);
    if (lid == 0u) {
        let nll = -((logits[base + t] - m) - log_s);
        row_loss[row] = p.inv_norm * ((1.0 - e) * wt * nll - e * inv_c * smooth_sum);
    }
}

fn softplus_neg_abs(v: f32) -> f32 {
    // log1p(exp(-|v|)) without losing the small values when exp(-|v|) << 1.
    let z = exp(-abs(v));
    if (z < 1e-4) {
        return z * (1.0 - 0.5 * z);
    }
    return log(1.0 + z);
}

// One row of a masked elementwise loss: BCE-with-logits when `bce`, else squared error.
fn masked_row_loss(row: u32, bce: bool) {
    let mk = row_mask[row];
    let scale = grad_scale() * p.inv_norm * mk;
    var acc = 0.0;
    for (var c = 0u; c < p.classes; c++) {
        let i = row * p.classes + c;
        let v = logits[i];
        let t = ftargets[i];
        var loss = 0.0;
        var grad = 0.0;
        if (bce) {
            // log(1 + exp(-v)) = softplus_neg_abs(v) + max(-v, 0), stable for any v.
            let lw = 1.0 + (weight(c) - 1.0) * t;
            loss = (1.0 - t) * v + lw * (softplus_neg_abs(v) + max(-v, 0.0));
            grad = (1.0 - t) - lw / (1.0 + exp(v));
        } else {
            loss = (v - t) * (v - t);
            grad = 2.0 * (v - t);
        }
        if (mk != 0.0) {
            acc += loss;
        }
        dlogits[i] = scale * grad;
    }
    row_loss[row] = p.inv_norm * mk * acc;
}

@compute @workgroup_size(WG)
fn bce_with_logits(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let row = linear_index(wid, nwg, lid);
    if (row < p.rows) {
        masked_row_loss(row, true);
    }
}

@compute @workgroup_size(WG)
fn mse(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
    let row = linear_index(wid, nwg, lid);
    if (row < p.rows) {
        masked_row_loss(row, false);
    }
}
