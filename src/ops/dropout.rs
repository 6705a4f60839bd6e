//! Launcher for `shaders/dropout.wgsl`: hash-based dropout whose mask is recomputed, never
//! stored. The same call with the same seed applies the backward to a gradient.

use anyhow::{Result, bail};
use bytemuck::{Pod, Zeroable};

use super::{dispatch_1d, ensure_f32, to_u32};
use crate::gpu::Tensor;
use crate::shaders::DROPOUT;

const WG: u32 = 256;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct Params {
    n: u32,
    seed: u32,
    threshold: u32,
    scale: f32,
}

/// Chris Wellons' lowbias32 integer hash (the shader's `lowbias32`).
pub fn lowbias32(v: u32) -> u32 {
    let mut h = v;
    h ^= h >> 16;
    h = h.wrapping_mul(0x7feb_352d);
    h ^= h >> 15;
    h = h.wrapping_mul(0x846c_a68b);
    h ^= h >> 16;
    h
}

/// A dropout seed for one site of one step, mixed from the model seed (SplitMix64 finalizer).
pub fn site_seed(model_seed: u64, step: u64, site: u64) -> u32 {
    let mut z = model_seed
        .wrapping_add(step.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .wrapping_add(site.wrapping_mul(0xbf58_476d_1ce4_e5b9));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) as u32
}

/// The hash threshold below which an element drops (p * 2^32).
pub fn drop_threshold(p: f32) -> u32 {
    ((p as f64) * 4_294_967_296.0).round().min(u32::MAX as f64) as u32
}

/// The factor a kept element is scaled by, 1 / (1 - p).
pub fn keep_scale(p: f32) -> f32 {
    1.0 / (1.0 - p)
}

/// Whether element `i` survives dropout `p` under `seed` (the CPU reference of the mask).
pub fn keeps(i: u32, seed: u32, p: f32) -> bool {
    lowbias32(lowbias32(i) ^ seed) >= drop_threshold(p)
}

/// `x * mask / (1 - p)` with the mask drawn from `seed`; also the backward on `dy`.
pub fn dropout(x: &Tensor, p: f32, seed: u32) -> Result<Tensor> {
    ensure_f32("dropout", x)?;
    if !(0.0..1.0).contains(&p) {
        bail!("dropout probability must be in [0, 1), got {p}");
    }
    let out = Tensor::empty(x.gpu(), x.shape(), x.dtype())?;
    let n = to_u32("dropout", x.numel())?;
    let params = Params {
        n,
        seed,
        threshold: drop_threshold(p),
        scale: keep_scale(p),
    };
    let (entry, items) = if n % 4 == 0 {
        ("dropout4", n / 4)
    } else {
        ("dropout", n)
    };
    dispatch_1d(
        &DROPOUT,
        entry,
        WG,
        &[],
        bytemuck::bytes_of(&params),
        &[x, &out],
        items as u64,
    )?;
    Ok(out)
}
