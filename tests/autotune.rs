//! Matmul autotuning: the first product of a shape class times the candidates and caches the
//! fastest per adapter on disk; the next one reuses the cached choice; results stay exact.

use taskgate::ops::autotune::{cache_path, shape_class};
use taskgate::ops::matmul::{Matmul, matmul};
use taskgate::{Gpu, Tensor};

#[test]
fn tuning_picks_a_kernel_caches_it_and_stays_correct() {
    let dir = tempfile::tempdir().unwrap();
    // This test binary has one test and sets the variable before creating the device.
    unsafe { std::env::set_var("TASKGATE_CACHE_DIR", dir.path()) };
    let gpu = Gpu::from_env_blocking().unwrap();
    gpu.set_autotune(true);
    let (m, n, k) = (24, 40, 16);
    let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 - 3.0).collect();
    let b: Vec<f32> = (0..n * k).map(|i| (i % 5) as f32 - 2.0).collect();
    let spec = Matmul::new(1, m, n, k, false, true);
    let at = Tensor::from_slice(&gpu, &a, &[m, k]).unwrap();
    let bt = Tensor::from_slice(&gpu, &b, &[n, k]).unwrap();
    let c: Vec<f32> = matmul(&at, &bt, None, &spec).unwrap().to_vec().unwrap();
    for i in 0..m {
        for j in 0..n {
            let want: f32 = (0..k).map(|p| a[i * k + p] * b[j * k + p]).sum();
            assert_eq!(c[i * n + j], want, "element {i},{j}");
        }
    }
    let path = cache_path().unwrap();
    assert!(path.starts_with(dir.path()));
    let cache: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let class = shape_class(&spec);
    let keys: Vec<&String> = cache.as_object().unwrap().keys().collect();
    assert!(
        keys.iter().any(|k| k.ends_with(&class)),
        "{class} in {keys:?}"
    );
    let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
    matmul(&at, &bt, None, &spec).unwrap();
    gpu.wait_idle().unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().modified().unwrap(),
        modified,
        "the cached choice is reused"
    );
}
