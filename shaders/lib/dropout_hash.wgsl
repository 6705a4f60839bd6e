// Shared by the kernels that apply dropout (prepended at build time; see src/shaders.rs): the
// counter-based mask, so a fused kernel drops exactly the elements dropout.wgsl drops.
// hash() is Chris Wellons' lowbias32; element i is kept when
// hash(hash(i) ^ seed) >= threshold (threshold = p * 2^32).

fn lowbias32(v: u32) -> u32 {
    var h = v;
    h ^= h >> 16u;
    h *= 0x7feb352du;
    h ^= h >> 15u;
    h *= 0x846ca68bu;
    h ^= h >> 16u;
    return h;
}

/// Whether dropout keeps element `i` under this seed and threshold.
fn dropout_keeps(i: u32, seed: u32, threshold: u32) -> bool {
    return lowbias32(lowbias32(i) ^ seed) >= threshold;
}
