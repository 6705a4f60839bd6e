// AdamW on flat f32 parameter buffers, with global gradient-norm clipping.
//   clip_coefficient (one invocation): from sumsq = sum of squared gradients (reduce.wgsl),
//     clip = [norm, coef, skip] with norm = sqrt(sumsq), coef = min(1, max_norm / (norm + 1e-6))
//     (1 when max_norm <= 0), and skip = 1 when norm is NaN or Inf: the step is then skipped.
//   adamw, for i in [offset, offset + n) (one parameter group):
//     if skip: nothing;  g = grad[i] * coef
//     param *= 1 - lr * weight_decay                        (decoupled weight decay)
//     m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g^2
//     param -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps)  with bc = 1 - beta^step
//   as torch.optim.AdamW after torch.nn.utils.clip_grad_norm_.
//   The moments of element i sit at m[moment_offset + i - offset] (they hold only the
//   parameters the optimizer updates: none for frozen ones).
//   adamw4: the same on vec4s (offset, moment_offset and n multiples of 4; n counts floats).
// Bindings: 0 params, 1 sumsq, 2 clip (3 floats), 3 param, 4 grad, 5 m, 6 v, and vec4 views
// 7 param4, 8 grad4, 9 m4, 10 v4.
// Dispatch: clip_coefficient (1, 1, 1); adamw ceil(n / WG) workgroups folded into x * y;
// adamw4 ceil(n / 4 / WG). linear_index comes from lib/index.wgsl (prepended).

struct Params {
    n: u32,
    offset: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    bc1: f32,
    bc2: f32,
    max_norm: f32,
    moment_offset: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> sumsq: array<f32>;
@group(0) @binding(2) var<storage, read_write> clip: array<f32>;
@group(0) @binding(3) var<storage, read_write> param: array<f32>;
@group(0) @binding(4) var<storage, read> grad: array<f32>;
@group(0) @binding(5) var<storage, read_write> m: array<f32>;
@group(0) @binding(6) var<storage, read_write> v: array<f32>;
@group(0) @binding(7) var<storage, read_write> param4: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read> grad4: array<vec4<f32>>;
@group(0) @binding(9) var<storage, read_write> m4: array<vec4<f32>>;
@group(0) @binding(10) var<storage, read_write> v4: array<vec4<f32>>;

override WG: u32 = 256;

fn is_finite(value: f32) -> bool {
    return (bitcast<u32>(value) & 0x7f800000u) != 0x7f800000u;
}

@compute @workgroup_size(1)
fn clip_coefficient() {
    let norm = sqrt(sumsq[0]);
    var coef = 1.0;
    if (p.max_norm > 0.0) {
        coef = min(1.0, p.max_norm / (norm + 1e-6));
    }
    let finite = is_finite(norm);
    clip[0] = norm;
    clip[1] = select(0.0, coef, finite);
    clip[2] = select(1.0, 0.0, finite);
}

@compute @workgroup_size(WG)
fn adamw(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let k = linear_index(wid, nwg, lid);
    if (k >= p.n || clip[2] != 0.0) {
        return;
    }
    let i = p.offset + k;
    let j = p.moment_offset + k;
    let g = grad[i] * clip[1];
    let w = param[i] * (1.0 - p.lr * p.weight_decay);
    let mi = p.beta1 * m[j] + (1.0 - p.beta1) * g;
    let vi = p.beta2 * v[j] + (1.0 - p.beta2) * g * g;
    m[j] = mi;
    v[j] = vi;
    let denom = sqrt(vi) / sqrt(p.bc2) + p.eps;
    param[i] = w - (p.lr / p.bc1) * mi / denom;
}

@compute @workgroup_size(WG)
fn adamw4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let k = linear_index(wid, nwg, lid);
    if (k >= p.n / 4u || clip[2] != 0.0) {
        return;
    }
    let i = p.offset / 4u + k;
    let j = p.moment_offset / 4u + k;
    let g = grad4[i] * clip[1];
    let w = param4[i] * (1.0 - p.lr * p.weight_decay);
    let mi = p.beta1 * m4[j] + (1.0 - p.beta1) * g;
    let vi = p.beta2 * v4[j] + (1.0 - p.beta2) * g * g;
    m4[j] = mi;
    v4[j] = vi;
    let denom = sqrt(vi) / sqrt(p.bc2) + vec4(p.eps);
    param4[i] = w - (p.lr / p.bc1) * mi / denom;
}
