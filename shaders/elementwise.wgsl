// Elementwise kernels over flat f32 buffers of `n` elements.
//   axpby:      out[i] = alpha * a[i] + beta * b[i]   (add, residual add, difference)
//   scale:      out[i] = alpha * a[i]
//   accumulate: out[i] = out[i] + alpha * a[i]        (gradient accumulation)
//   fill:       out[i] = alpha
//   accumulate_weighted: out[i] = out[i] + (alpha * weights[index]) * a[i]   (a loss times its
//               task's weight, read from the GPU tensor of task weights)
//   axpby4, scale4, accumulate4, fill4: the same on vec4s (n % 4 == 0; n counts floats).
// Bindings: 0 params, 1 a, 2 b, 3 out, and vec4 views 4 a4, 5 b4, 6 out4, 7 weights; each
// entry uses its subset, in that order.
// Dispatch: ceil(n / WG) workgroups of WG invocations, folded into x * y when large; the
// linear index comes from lib/index.wgsl (prepended).

struct Params {
    n: u32,
    alpha: f32,
    beta: f32,
    index: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> out4: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read> weights: array<f32>;

override WG: u32 = 256;

@compute @workgroup_size(WG)
fn axpby(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i < p.n) {
        out[i] = p.alpha * a[i] + p.beta * b[i];
    }
}

@compute @workgroup_size(WG)
fn scale(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i < p.n) {
        out[i] = p.alpha * a[i];
    }
}

@compute @workgroup_size(WG)
fn accumulate(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i < p.n) {
        out[i] = out[i] + p.alpha * a[i];
    }
}

@compute @workgroup_size(WG)
fn accumulate_weighted(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i < p.n) {
        out[i] = out[i] + (p.alpha * weights[p.index]) * a[i];
    }
}

@compute @workgroup_size(WG)
fn fill(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i < p.n) {
        out[i] = p.alpha;
    }
}

@compute @workgroup_size(WG)
fn axpby4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i < p.n / 4u) {
        out4[i] = p.alpha * a4[i] + p.beta * b4[i];
    }
}

@compute @workgroup_size(WG)
fn scale4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i < p.n / 4u) {
        out4[i] = p.alpha * a4[i];
    }
}

@compute @workgroup_size(WG)
fn accumulate4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i < p.n / 4u) {
        out4[i] = out4[i] + p.alpha * a4[i];
    }
}

@compute @workgroup_size(WG)
fn fill4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i < p.n / 4u) {
        out4[i] = vec4(p.alpha);
    }
}
