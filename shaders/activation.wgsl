// Pointwise activations and their derivatives over flat f32 buffers of `n` elements.
//   gelu:           out = 0.5 * x * (1 + erf(x / sqrt(2)))          (exact erf form, as BERT)
//   gelu_backward:  out = dy * (0.5 * (1 + erf(x / sqrt(2))) + x * exp(-x^2 / 2) / sqrt(2 pi))
//   tanh_forward:   out = tanh(x)
//   tanh_backward:  out = dy * (1 - tanh(x)^2)
//   sigmoid:        out = 1 / (1 + exp(-x))
// GELU comes from lib/gelu.wgsl, linear_index from lib/index.wgsl (both prepended). tanh is evaluated on x clamped to [-15, 15],
// where f32 tanh is already +-1, so no backend overflows into NaN.
//   gelu4, gelu_backward4: GELU and its backward on vec4s (n % 4 == 0).
// Bindings: 0 params, 1 x, 2 dy, 3 out (forward entries use x, out), and vec4 views 4 x4,
// 5 dy4, 6 out4.
// Dispatch: ceil(n / WG) workgroups (vec4 entries: ceil(n / 4 / WG)), folded into x * y.

struct Params {
    n: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> dy4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> out4: array<vec4<f32>>;

override WG: u32 = 256;

fn safe_tanh(v: f32) -> f32 {
    return tanh(clamp(v, -15.0, 15.0));
}

@compute @workgroup_size(WG)
fn gelu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i < p.n) {
        out[i] = gelu_of(x[i]);
    }
}

@compute @workgroup_size(WG)
fn gelu_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i < p.n) {
        out[i] = dy[i] * gelu_grad_of(x[i]);
    }
}

@compute @workgroup_size(WG)
fn tanh_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i < p.n) {
        out[i] = safe_tanh(x[i]);
    }
}

@compute @workgroup_size(WG)
fn tanh_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i < p.n) {
        let t = safe_tanh(x[i]);
        out[i] = dy[i] * (1.0 - t * t);
    }
}

@compute @workgroup_size(WG)
fn sigmoid(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i < p.n) {
        out[i] = 1.0 / (1.0 + exp(-x[i]));
    }
}


@compute @workgroup_size(WG)
fn gelu4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i < p.n / 4u) {
        let v = x4[i];
        out4[i] = vec4(gelu_of(v.x), gelu_of(v.y), gelu_of(v.z), gelu_of(v.w));
    }
}

@compute @workgroup_size(WG)
fn gelu_backward4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i < p.n / 4u) {
        let v = x4[i];
        out4[i] = dy4[i] * vec4(gelu_grad_of(v.x), gelu_grad_of(v.y), gelu_grad_of(v.z), gelu_grad_of(v.w));
    }
}
