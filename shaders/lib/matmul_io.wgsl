// Shared by the matmul kernels (prepended at build time after matmul_params.wgsl and
// gelu.wgsl; see src/shaders.rs): the bindings and switches every variant has besides its A
// and B, the origins of batch z's matrices, and the epilogue that stores one element of C.
// Bindings: 0 params, 3 bias (read only when HAS_BIAS), 4 c, 5 d (written only when
// GELU_OUT); each kernel declares its own a and b.

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;
@group(0) @binding(5) var<storage, read_write> d: array<f32>;

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override HAS_BIAS: bool = false;
override ACCUMULATE: bool = false;
/// Also write gelu(C) into d (the bias + GELU epilogue of a feed-forward layer).
override GELU_OUT: bool = false;

/// Element offsets of A, B and C for batch z = outer * batch_inner + inner.
struct Origins {
    a: u32,
    b: u32,
    c: u32,
}

fn batch_origins(z: u32) -> Origins {
    let outer = z / p.batch_inner;
    let inner = z % p.batch_inner;
    return Origins(
        p.a_offset + outer * p.a_outer + inner * p.a_inner,
        p.b_offset + outer * p.b_outer + inner * p.b_inner,
        p.c_offset + outer * p.c_outer + inner * p.c_inner,
    );
}

/// Stores C at element `o` (column `col`) from its accumulated product `acc`:
/// alpha * acc (+ bias[col]) (+ beta * C[o]), and gelu of that into d with GELU_OUT.
fn store_c(o: u32, col: u32, acc: f32) {
    var v = p.alpha * acc;
    if (HAS_BIAS) {
        v += bias[col];
    }
    if (ACCUMULATE) {
        v += p.beta * c[o];
    }
    c[o] = v;
    if (GELU_OUT) {
        d[o] = gelu_of(v);
    }
}
