// Packs a tensor into an rgba32float texture for kernels that read operands as texels:
// the tensor is viewed as rows of `ld` floats (ld % 4 == 0) and
//   texel(x, y) = src[y * ld + 4x .. y * ld + 4x + 4]      (zero past the tensor's end)
// for x < width = ld / 4 and y < height.
// Bindings: 0 params, 1 src (vec4 array), 2 dst (storage texture).
// Dispatch: (ceil(width / WG), height) workgroups of WG invocations, one per texel.

struct Params {
    ld4: u32,
    n4: u32,
    width: u32,
    height: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var dst: texture_storage_2d<rgba32float, write>;

override WG: u32 = 64;

@compute @workgroup_size(WG)
fn pack(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x >= p.width || gid.y >= p.height) {
        return;
    }
    let i = gid.y * p.ld4 + gid.x;
    var v = vec4<f32>(0.0);
    if (i < p.n4) {
        v = src[i];
    }
    textureStore(dst, vec2<u32>(gid.x, gid.y), v);
}
