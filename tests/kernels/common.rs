//! Shared test helpers: one GPU per test binary, seeded random data, and comparisons that
//! report the worst error seen (run with `--nocapture` to read them).

use std::sync::OnceLock;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use taskgate::{DType, Gpu, Tensor};

/// The GPU every test in this binary shares (chosen as `taskgate info` would).
pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        Gpu::from_env_blocking().unwrap_or_else(|e| {
            panic!("the kernel tests need a GPU adapter (on Linux without a GPU: apt-get install mesa-vulkan-drivers): {e:#}")
        })
    })
}

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// `n` values uniform in [lo, hi), rounded to f32 (so the reference sees exactly the
/// values the GPU sees).
pub fn uniform(rng: &mut StdRng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

pub fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

pub fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

pub fn upload(data: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(gpu(), data, shape).unwrap()
}

pub fn download(t: &Tensor) -> Vec<f32> {
    assert_eq!(t.dtype(), DType::F32);
    t.to_vec::<f32>().unwrap()
}

/// Asserts `|got - want| <= atol + rtol * |want|` everywhere (and no NaN/Inf), prints the
/// worst absolute error under `label`, and returns it.
#[track_caller]
pub fn assert_close(label: &str, got: &[f32], want: &[f64], atol: f64, rtol: f64) -> f64 {
    assert_eq!(got.len(), want.len(), "{label}: length");
    let mut worst = 0.0f64;
    let mut worst_at = 0;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let g = g as f64;
        assert!(g.is_finite(), "{label}: element {i} is {g} (want {w})");
        let err = (g - w).abs();
        if err > atol + rtol * w.abs() {
            panic!(
                "{label}: element {i} is {g}, want {w} (error {err:.3e} > atol {atol:e} + rtol {rtol:e})"
            );
        }
        if err > worst {
            worst = err;
            worst_at = i;
        }
    }
    println!(
        "worst {label}: max abs error {worst:.2e} (at {worst_at} of {})",
        got.len()
    );
    worst
}

/// Asserts two f64 gradients agree (reference backward vs finite differences).
#[track_caller]
pub fn assert_grad_close(label: &str, analytic: &[f64], numeric: &[f64], tol: f64) {
    assert_eq!(analytic.len(), numeric.len(), "{label}: length");
    for (i, (a, n)) in analytic.iter().zip(numeric).enumerate() {
        let scale = 1.0f64.max(a.abs()).max(n.abs());
        assert!(
            (a - n).abs() <= tol * scale,
            "{label}: gradient {i}: analytic {a}, finite difference {n}"
        );
    }
}

/// PyTorch's results for the losses and the optimizer (tests/fixtures/make_kernel_fixtures.py).
pub fn torch_fixture() -> serde_json::Value {
    serde_json::from_str(include_str!("../fixtures/kernels_torch.json")).unwrap()
}

/// A JSON array of numbers as f64.
pub fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}
