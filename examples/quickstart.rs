//! A linear layer with GELU on the GPU, checked against the CPU reference:
//! `cargo run --example quickstart`.

use anyhow::Result;
use taskgate::ops::activation::gelu;
use taskgate::ops::matmul::{Matmul, matmul};
use taskgate::reference;
use taskgate::{Gpu, Tensor};

fn main() -> Result<()> {
    // SAFETY: the first statement of `main`, before any other thread exists.
    unsafe { taskgate::gpu::adapter::quiet_mesa_device_select() };
    let gpu = Gpu::from_env_blocking()?;
    println!("adapter: {}", gpu.adapter_info().name);

    // y = gelu(x W^T + b) with x [4, 8] and W [16, 8] stored [out, in] as in Hugging Face.
    let (rows, d_in, d_out) = (4, 8, 16);
    let x: Vec<f32> = (0..rows * d_in).map(|i| (i as f32 * 0.37).sin()).collect();
    let w: Vec<f32> = (0..d_out * d_in)
        .map(|i| (i as f32 * 0.11).cos() * 0.3)
        .collect();
    let b: Vec<f32> = (0..d_out).map(|i| i as f32 * 0.01).collect();
    let spec = Matmul::new(1, rows, d_out, d_in, false, true);
    let h = matmul(
        &Tensor::from_slice(&gpu, &x, &[rows, d_in])?,
        &Tensor::from_slice(&gpu, &w, &[d_out, d_in])?,
        Some(&Tensor::from_slice(&gpu, &b, &[d_out])?),
        &spec,
    )?;
    let y: Vec<f32> = gelu(&h)?.to_vec()?;

    let f64s = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<_>>();
    let shape = reference::matmul::MatmulShape::new(1, rows, d_out, d_in, false, true);
    let want: Vec<f64> = reference::matmul::matmul(&f64s(&x), &f64s(&w), Some(&f64s(&b)), &shape)
        .into_iter()
        .map(reference::activation::gelu)
        .collect();
    let worst = y
        .iter()
        .zip(&want)
        .map(|(g, w)| (*g as f64 - w).abs())
        .fold(0.0, f64::max);
    println!("y[0..4] = {:?}; max |GPU - CPU| = {worst:.2e}", &y[..4]);
    Ok(())
}
