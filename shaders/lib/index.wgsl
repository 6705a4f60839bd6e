// Shared by the 1-D and row kernels (prepended at build time; see src/shaders.rs): the index
// arithmetic of a grid folded into x * y by gpu::dispatch::grid_1d. The including shader
// declares its workgroup width as `override WG: u32`; indices past the end are the caller's
// to ignore.
// needs: override WG: u32;

/// The linear index of this workgroup (one row of a row kernel).
fn workgroup_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y * nwg.x + wid.x;
}

/// The linear index of this invocation, WG per workgroup.
fn linear_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return workgroup_index(wid, nwg) * WG + lid;
}
