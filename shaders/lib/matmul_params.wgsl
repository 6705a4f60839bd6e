// Shared by the matmul kernels (prepended at build time; see src/shaders.rs): their uniform
// parameters, in the layout of `Params` in src/ops/matmul.rs (see matmul.wgsl's header for
// what each field means).

struct Params {
    m: u32,
    n: u32,
    k: u32,
    batch_inner: u32,
    lda: u32,
    ldb: u32,
    ldc: u32,
    tex_width: u32,
    a_outer: u32,
    a_inner: u32,
    b_outer: u32,
    b_inner: u32,
    c_outer: u32,
    c_inner: u32,
    alpha: f32,
    beta: f32,
    a_offset: u32,
    b_offset: u32,
    c_offset: u32,
    tex_height: u32,
    a_tex_width: u32,
    a_tex_height: u32,
    _pad0: u32,
    _pad1: u32,
}
