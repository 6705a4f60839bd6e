//! `taskgate bench kernels`: every case of `bench/suite.json` through taskgate's launchers.
//!
//! Timing: on GPUs with timestamp queries, the GPU time of the dispatches; elsewhere (and on
//! CPU adapters, whose timestamps are unreliable) the wall clock around work submitted and
//! completed, one sample at a time. Warm-up runs (the first compiles the pipelines) are
//! excluded. Work is counted as the PyTorch baseline counts it.

use anyhow::{Result, bail};
use rand::{Rng, SeedableRng};
use serde::Deserialize;

use super::report::{BenchResult, Report};
use crate::gpu::{DType, Gpu, ProfileMode, Tensor};
use crate::nn::attention::AttentionCore;
use crate::nn::tied_output::{DEFAULT_CHUNK_BYTES, tied_cross_entropy};
use crate::nn::{Mode, Site};
use crate::ops::activation::gelu;
use crate::ops::adamw::{AdamW, adamw_step, grad_norm_clip};
use crate::ops::layernorm::layernorm_forward;
use crate::ops::loss::{CrossEntropyOptions, bce_with_logits, cross_entropy, mse};
use crate::ops::matmul::{Kernel, Matmul, matmul_into};

/// The cases of `bench/suite.json` (embedded at build time).
#[derive(Debug, Deserialize)]
pub struct Suite {
    pub matmul: Vec<(usize, usize, usize, String)>,
    pub attention: Vec<(usize, usize, usize, usize)>,
    pub layernorm: Vec<(usize, usize)>,
    pub gelu: Vec<usize>,
    pub cross_entropy: Vec<(usize, usize)>,
    pub tied_output: Vec<(usize, usize, usize)>,
    pub bce: Vec<(usize, usize)>,
    pub mse: Vec<(usize, usize)>,
    pub adamw: Vec<usize>,
}

impl Suite {
    pub fn load() -> Result<Self> {
        Ok(serde_json::from_str(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/bench/suite.json"
        )))?)
    }
}

/// How many runs to make of each case.
#[derive(Clone, Copy, Debug)]
pub struct Runs {
    pub warmup: usize,
    pub samples: usize,
}

/// Times `f` (which records GPU work) `runs.samples` times after `runs.warmup` runs: by GPU
/// timestamps where [`Gpu::profile_mode`] says so and `wall` is false, else by wall clock.
pub fn measure(
    gpu: &Gpu,
    runs: Runs,
    wall: bool,
    mut f: impl FnMut() -> Result<()>,
) -> Result<Vec<f64>> {
    for _ in 0..runs.warmup {
        f()?;
    }
    gpu.wait_idle()?;
    let mut samples = Vec::with_capacity(runs.samples);
    for _ in 0..runs.samples {
        match gpu.profile_mode() {
            ProfileMode::GpuTimestamps if !wall => {
                gpu.start_profiling()?;
                f()?;
                samples.push(gpu.stop_profiling()?.iter().map(|k| k.seconds).sum());
            }
            _ => {
                let start = std::time::Instant::now();
                f()?;
                gpu.wait_idle()?;
                samples.push(start.elapsed().as_secs_f64());
            }
        }
    }
    Ok(samples)
}

fn random(
    gpu: &Gpu,
    rng: &mut rand_chacha::ChaCha8Rng,
    shape: &[usize],
    scale: f32,
) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n).map(|_| rng.random_range(-scale..scale)).collect();
    Tensor::from_slice(gpu, &data, shape)
}

/// Human description of the timing method of this adapter.
pub fn timing_name(gpu: &Gpu) -> &'static str {
    match gpu.profile_mode() {
        ProfileMode::GpuTimestamps => "GPU timestamp queries",
        ProfileMode::WallClock => {
            "wall clock around submitted and completed work (CPU adapter: timestamps unreliable)"
        }
    }
}

/// Runs every case whose `name shape` contains `filter`.
pub fn run(gpu: &Gpu, runs: Runs, filter: Option<&str>) -> Result<Report> {
    let suite = Suite::load()?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut results = Vec::new();
    let wanted =
        |name: &str, shape: &str| filter.is_none_or(|f| format!("{name} {shape}").contains(f));
    let mut push = |r: BenchResult| {
        let rate = r
            .gflops
            .map(|g| format!("{g:.1} GFLOP/s"))
            .or(r.gbps.map(|g| format!("{g:.1} GB/s")))
            .unwrap_or_default();
        println!(
            "{:<28} {:<24} {:>10.2} ms (min {:>8.2})  {rate}",
            r.name, r.shape, r.median_ms, r.min_ms
        );
        results.push(r);
    };

    for (m, n, k, layout) in &suite.matmul {
        let shape = format!("{m}x{n}x{k} {layout}");
        if !wanted("matmul", &shape) {
            continue;
        }
        let (ta, tb) = match layout.as_str() {
            "nn" => (false, false),
            "nt" => (false, true),
            "tn" => (true, false),
            other => bail!("bench/suite.json: unknown matmul layout {other}"),
        };
        let spec = Matmul::new(1, *m, *n, *k, ta, tb);
        let a = random(gpu, &mut rng, &[m * k], 1.0)?;
        let b = random(gpu, &mut rng, &[k * n], 1.0)?;
        let c = Tensor::empty(gpu, &[m * n], DType::F32)?;
        let samples = measure(gpu, runs, false, || {
            matmul_into(&a, &b, None, &c, &spec, 1.0, 0.0, Kernel::Auto)
        })?;
        push(BenchResult::from_samples(
            "kernels",
            "matmul",
            shape,
            &samples,
            Some(spec.flops()),
            None,
        ));
    }

    for &(b, h, t, dh) in &suite.attention {
        let shape = format!("b{b} h{h} t{t} d{dh}");
        if !wanted("attention", &shape) {
            continue;
        }
        let d = h * dh;
        let core = AttentionCore {
            heads: h,
            dropout: 0.0,
            site: Site(0),
        };
        let qkv = random(gpu, &mut rng, &[b * t, 3 * d], 1.0)?;
        let mut mask = vec![0.0f32; b * t];
        for row in 0..b {
            for pos in t - t / 8..t {
                mask[row * t + pos] = f32::MIN;
            }
        }
        let mask = Tensor::from_slice(gpu, &mask, &[b, t])?;
        let dcontext = random(gpu, &mut rng, &[b * t, d], 1.0)?;
        let flops = 4.0 * (b * h * t * t * dh) as f64;
        // Inference forward (the fused kernel), as PyTorch's is timed under no_grad.
        let fwd = measure(gpu, runs, false, || {
            core.forward(&qkv, &mask, b, t, Mode::Infer).map(|_| ())
        })?;
        push(BenchResult::from_samples(
            "kernels",
            "attention forward",
            shape.clone(),
            &fwd,
            Some(flops),
            None,
        ));
        let both = measure(gpu, runs, false, || {
            let (_, probs) = core.forward(&qkv, &mask, b, t, Mode::Eval)?;
            let probs = probs.ok_or_else(|| anyhow::anyhow!("no probabilities kept"))?;
            core.backward(&qkv, &probs, &dcontext, b, t, Mode::Eval)
                .map(|_| ())
        })?;
        push(BenchResult::from_samples(
            "kernels",
            "attention forward+backward",
            shape,
            &both,
            Some(3.0 * flops),
            None,
        ));
    }

    for &(rows, width) in &suite.layernorm {
        let shape = format!("{rows}x{width}");
        if !wanted("layernorm", &shape) {
            continue;
        }
        let x = random(gpu, &mut rng, &[rows, width], 1.0)?;
        let g = random(gpu, &mut rng, &[width], 1.0)?;
        let bias = random(gpu, &mut rng, &[width], 1.0)?;
        let samples = measure(gpu, runs, false, || {
            layernorm_forward(&x, &g, &bias, 1e-12).map(|_| ())
        })?;
        push(BenchResult::from_samples(
            "kernels",
            "layernorm",
            shape,
            &samples,
            None,
            Some(8.0 * (rows * width) as f64),
        ));
    }

    for &n in &suite.gelu {
        if !wanted("gelu", &n.to_string()) {
            continue;
        }
        let x = random(gpu, &mut rng, &[n], 3.0)?;
        let samples = measure(gpu, runs, false, || gelu(&x).map(|_| ()))?;
        push(BenchResult::from_samples(
            "kernels",
            "gelu",
            n.to_string(),
            &samples,
            None,
            Some(8.0 * n as f64),
        ));
    }

    for &(rows, classes) in &suite.cross_entropy {
        let shape = format!("{rows}x{classes}");
        if !wanted("cross_entropy", &shape) {
            continue;
        }
        let logits = random(gpu, &mut rng, &[rows, classes], 3.0)?;
        let targets: Vec<i32> = (0..rows).map(|r| (r % classes) as i32).collect();
        let opts = CrossEntropyOptions::default();
        let samples = measure(gpu, runs, false, || {
            cross_entropy(&logits, &targets, &opts).map(|_| ())
        })?;
        push(BenchResult::from_samples(
            "kernels",
            "cross_entropy",
            shape,
            &samples,
            None,
            Some(12.0 * (rows * classes) as f64),
        ));
    }
    for &(rows, vocab, hidden) in &suite.tied_output {
        let shape = format!("{rows}x{vocab}x{hidden}");
        if !wanted("tied_output", &shape) {
            continue;
        }
        let x = random(gpu, &mut rng, &[rows, hidden], 1.0)?;
        let embeddings = random(gpu, &mut rng, &[vocab, hidden], 0.05)?;
        let dembeddings = Tensor::zeros(gpu, &[vocab, hidden], DType::F32)?;
        let targets: Vec<i32> = (0..rows).map(|r| ((r * 7919) % vocab) as i32).collect();
        let opts = CrossEntropyOptions::default();
        let samples = measure(gpu, runs, false, || {
            tied_cross_entropy(
                &embeddings,
                Some(&dembeddings),
                &x,
                &targets,
                &opts,
                DEFAULT_CHUNK_BYTES,
            )
            .map(|_| ())
        })?;
        // Three products of 2 * rows * vocab * hidden flops each.
        push(BenchResult::from_samples(
            "kernels",
            "tied_output",
            shape,
            &samples,
            Some(6.0 * (rows * vocab * hidden) as f64),
            None,
        ));
    }
    for (name, cases) in [("bce", &suite.bce), ("mse", &suite.mse)] {
        for &(rows, outputs) in cases {
            let shape = format!("{rows}x{outputs}");
            if !wanted(name, &shape) {
                continue;
            }
            let logits = random(gpu, &mut rng, &[rows, outputs], 3.0)?;
            let targets: Vec<f32> = (0..rows * outputs).map(|i| (i % 2) as f32).collect();
            let mask = vec![1.0f32; rows];
            let samples = measure(gpu, runs, false, || {
                if name == "bce" {
                    bce_with_logits(&logits, &targets, &mask, 1.0).map(|_| ())
                } else {
                    mse(&logits, &targets, &mask, 1.0).map(|_| ())
                }
            })?;
            push(BenchResult::from_samples(
                "kernels",
                name,
                shape,
                &samples,
                None,
                Some(12.0 * (rows * outputs) as f64),
            ));
        }
    }

    for &n in &suite.adamw {
        if !wanted("adamw", &n.to_string()) {
            continue;
        }
        let param = random(gpu, &mut rng, &[n], 1.0)?;
        let grad = random(gpu, &mut rng, &[n], 1.0)?;
        let m = Tensor::zeros(gpu, &[n], DType::F32)?;
        let v = Tensor::zeros(gpu, &[n], DType::F32)?;
        let clip = grad_norm_clip(&grad, 0.0)?;
        let hp = AdamW::default();
        let mut step = 0;
        let samples = measure(gpu, runs, false, || {
            step += 1;
            adamw_step(&param, &grad, &m, &v, &clip, &hp, step, 0..n, 0)
        })?;
        push(BenchResult::from_samples(
            "kernels",
            "adamw",
            n.to_string(),
            &samples,
            None,
            Some(28.0 * n as f64),
        ));
    }

    Ok(Report {
        framework: format!("taskgate {}", env!("CARGO_PKG_VERSION")),
        device: device_name(gpu),
        timing: timing_name(gpu).into(),
        results,
    })
}

/// The adapter as reports name it.
pub fn device_name(gpu: &Gpu) -> String {
    let info = gpu.adapter_info();
    format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type)
}
