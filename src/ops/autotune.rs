//! Matmul autotuning: when enabled (`TASKGATE_AUTOTUNE=1`, `Gpu::set_autotune`, or
//! `--autotune` on the bench commands), the first product of each shape class on an adapter
//! times a few candidate kernels and tilings and keeps the fastest; the choice is cached on
//! disk per adapter (the cache and the environment switch: [`crate::gpu::tune_cache`]).
//! When tuning is off, `Kernel::Auto` uses fixed defaults. Tuning a class waits for the GPU
//! (once per class and adapter); native only.

use anyhow::Result;

use super::matmul::{GENERAL_TILING, Kernel, Matmul, Tiling, VEC4_TILING, WORKGROUP_TILING};
#[cfg(not(target_arch = "wasm32"))]
use crate::gpu::tune_cache::TuneCache;
pub use crate::gpu::tune_cache::cache_path;
use crate::gpu::{Gpu, Tensor};

/// The shape class of a product: sizes rounded up to powers of two, layout and batching.
pub fn shape_class(spec: &Matmul) -> String {
    let bucket = |v: usize| v.next_power_of_two();
    format!(
        "m{} n{} k{} ta{} tb{} batched{}",
        bucket(spec.m),
        bucket(spec.n),
        bucket(spec.k),
        spec.trans_a as u8,
        spec.trans_b as u8,
        (spec.batch * spec.batch_inner > 1) as u8
    )
}

/// The candidates worth timing for `spec` on `gpu`.
pub fn candidates(gpu: &Gpu, spec: &Matmul, b_numel: usize) -> Vec<Kernel> {
    let mut out = Vec::new();
    if spec.subgroup_ok(gpu, b_numel) {
        for chunks in [2, 4, 8, 16] {
            out.push(Kernel::Subgroup {
                chunks,
                tex_a: true,
            });
        }
    }
    if !gpu.is_cpu_adapter() {
        if spec.vec4_ok() {
            out.push(Kernel::Vec4(VEC4_TILING));
            out.push(Kernel::Vec4(Tiling {
                wg_x: 16,
                wg_y: 16,
                tm: 4,
                tn: 4,
            }));
        }
        out.push(Kernel::Workgroup(WORKGROUP_TILING));
        out.push(Kernel::Workgroup(Tiling {
            wg_x: 16,
            wg_y: 16,
            tm: 8,
            tn: 4,
        }));
        out.push(Kernel::General(GENERAL_TILING));
    }
    out
}

/// The tuned kernel for `spec`, timing the candidates on first use of its class.
#[cfg(not(target_arch = "wasm32"))]
pub fn tuned_kernel(gpu: &Gpu, a: &Tensor, b: &Tensor, spec: &Matmul) -> Result<Option<Kernel>> {
    let info = gpu.adapter_info();
    let key = format!(
        "{} | {} | {}",
        info.name,
        info.driver_info,
        shape_class(spec)
    );
    let mut guard = gpu.inner.tuning.lock().unwrap();
    let cache = guard.get_or_insert_with(TuneCache::load);
    if let Some(kernel) = cache.get::<Kernel>(&key) {
        return Ok(Some(kernel));
    }
    let candidates = candidates(gpu, spec, b.numel());
    if candidates.len() < 2 {
        return Ok(candidates.first().copied());
    }
    // Time each candidate on the real operands into a scratch output.
    let c_len = (spec.batch - 1) * spec.c.outer_stride
        + (spec.batch_inner - 1) * spec.c.inner_stride
        + spec.c.offset
        + (spec.m - 1) * spec.c.ld
        + spec.n;
    let scratch = Tensor::empty(gpu, &[c_len], crate::gpu::DType::F32)?;
    let mut best: Option<(f64, Kernel)> = None;
    for kernel in candidates {
        let run = || super::matmul::matmul_into(a, b, None, &scratch, spec, 1.0, 0.0, kernel);
        // A candidate the adapter cannot run (limits) is skipped, not fatal.
        if run().and_then(|_| gpu.wait_idle()).is_err() {
            continue;
        }
        let mut times = Vec::new();
        for _ in 0..3 {
            let start = std::time::Instant::now();
            run()?;
            gpu.wait_idle()?;
            times.push(start.elapsed().as_secs_f64());
        }
        // The minimum: least disturbed by whatever else the machine does.
        let t = times.into_iter().fold(f64::INFINITY, f64::min);
        if best.is_none_or(|(bt, _)| t < bt) {
            best = Some((t, kernel));
        }
    }
    let chosen = best.map(|(_, k)| k);
    if let Some(kernel) = chosen {
        cache.insert(key, &kernel);
        cache.save();
    }
    Ok(chosen)
}

#[cfg(target_arch = "wasm32")]
pub fn tuned_kernel(
    _gpu: &Gpu,
    _a: &Tensor,
    _b: &Tensor,
    _spec: &Matmul,
) -> Result<Option<Kernel>> {
    Ok(None)
}
