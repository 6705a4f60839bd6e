// Shared by the row kernels that reduce over a workgroup (prepended at build time; see
// src/shaders.rs): a tree reduction through the workgroup array `red` of WG floats, WG (the
// including shader's `override WG: u32`) a power of two.
// needs: override WG: u32;

var<workgroup> red: array<f32, WG>;

/// The sum of `v` over the workgroup's invocations (their maximum when `take_max`), returned to
/// every invocation; `lid` is the local invocation index. Call from uniform control flow.
fn workgroup_reduce(lid: u32, v: f32, take_max: bool) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            red[lid] = select(red[lid] + red[lid + s], max(red[lid], red[lid + s]), take_max);
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}
