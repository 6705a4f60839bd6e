//! `taskgate bench train`: whole training steps (forward, backward through three gated task
//! heads, AdamW with clipping) of a randomly initialized encoder on synthetic batches, the
//! same model and batch as `bench/torch_baseline.py train`; with `--weighting`, steps over a
//! batch of every task under each weighting method, side by side.

use anyhow::{Result, bail};

use super::kernels::{Runs, device_name, measure};
use super::report::{BenchResult, Report};
use crate::config::{GateMode, HeadConfig, Mixing, Pooling, TrainConfig, Weighting};
use crate::data::{Batch, TaskTargets};
use crate::gpu::Gpu;
use crate::model::MultiTaskModel;
use crate::model::host::HostParams;
use crate::model::init::init_missing;
use crate::model::spec::{EncoderDims, ModelSpec};
use crate::ops::activation::Activation;
use crate::ops::adamw::AdamW;
use crate::tasks::{TaskKind, TaskSpec};
use crate::train::weighting::Weighter;
use crate::train::{Decay, LrSchedule, TrainOptions, Trainer};

/// Encoder sizes (as `bench/torch_baseline.py MODELS`): (hidden, layers, heads, intermediate).
pub const MODELS: &[(&str, usize, usize, usize, usize)] = &[
    ("tiny", 128, 2, 4, 512),
    ("minilm-l2", 384, 2, 12, 1536),
    ("minilm-l6", 384, 6, 12, 1536),
    ("bert-base", 768, 12, 12, 3072),
];

fn task(
    name: &str,
    kind: TaskKind,
    width: usize,
    gate: GateMode,
    pooling: Option<Pooling>,
) -> TaskSpec {
    TaskSpec {
        name: name.into(),
        kind,
        labels: kind
            .named_outputs()
            .then(|| (0..width).map(|i| i.to_string()).collect()),
        outputs: (!kind.named_outputs()).then_some(width),
        gate,
        pooling,
        head: HeadConfig {
            hidden: Vec::new(),
            activation: Activation::Gelu,
        },
        lambda: 1.0,
        ..TaskSpec::new(name, kind)
    }
}

/// The benchmark model: a BERT encoder of `model`'s size with three gated heads.
pub fn bench_spec(model: &str) -> Result<ModelSpec> {
    let Some(&(_, hidden, layers, heads, intermediate)) = MODELS.iter().find(|m| m.0 == model)
    else {
        let names: Vec<&str> = MODELS.iter().map(|m| m.0).collect();
        bail!(
            "unknown benchmark model '{model}' (use one of: {})",
            names.join(", ")
        );
    };
    Ok(ModelSpec {
        encoder: EncoderDims {
            vocab_size: 30522,
            hidden,
            layers,
            heads,
            intermediate,
            max_positions: 512,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            dropout: 0.1,
            attention_dropout: 0.1,
            seed: 0,
            max_length: 512,
        },
        tasks: vec![
            task(
                "classification",
                TaskKind::CLASSIFICATION,
                2,
                GateMode::Scalar,
                Some(Pooling::Cls),
            ),
            task(
                "regression",
                TaskKind::REGRESSION,
                1,
                GateMode::Vector,
                Some(Pooling::Mean),
            ),
            task(
                "tokens",
                TaskKind::TOKEN_CLASSIFICATION,
                10,
                GateMode::Scalar,
                None,
            ),
        ],
    })
}

/// A synthetic batch with every task labelled.
pub fn synthetic_batch(batch: usize, seq: usize) -> Batch {
    let ids: Vec<u32> = (0..batch * seq)
        .map(|i| (1000 + (i * 7919) % 20000) as u32)
        .collect();
    Batch {
        batch,
        seq,
        ids,
        type_ids: vec![0; batch * seq],
        attention: vec![1; batch * seq],
        pad_id: 0,
        targets: vec![
            TaskTargets::Classes((0..batch).map(|i| (i % 2) as i32).collect()),
            TaskTargets::Dense {
                targets: (0..batch).map(|i| (i % 7) as f32 / 7.0).collect(),
                mask: vec![1.0; batch],
            },
            TaskTargets::Tokens((0..batch * seq).map(|i| (i % 10) as i32).collect()),
        ],
    }
}

/// Options of `bench train`.
#[derive(Clone, Debug)]
pub struct TrainBench {
    pub model: String,
    pub batch: usize,
    pub seq: usize,
    pub runs: Runs,
    pub profile: bool,
    /// Weighting methods to time on steps over every task (one batch of `batch` examples
    /// per task, `mixing = "all_tasks"`); empty: one-batch steps as before.
    pub weighting: Vec<Weighting>,
}

/// The optimizer settings of every benchmarked step.
fn bench_options() -> TrainOptions {
    TrainOptions {
        schedule: LrSchedule {
            peak: 1e-4,
            warmup: 10,
            total: 1000,
            decay: Decay::Linear,
        },
        adamw: AdamW::default(),
        clip: 1.0,
    }
}

/// `synthetic_batch` with only task `task` labelled (a batch of one task's training file).
pub fn one_task_batch(batch: usize, seq: usize, task: usize) -> Batch {
    let mut b = synthetic_batch(batch, seq);
    for (t, targets) in b.targets.iter_mut().enumerate() {
        if t != task {
            match targets {
                TaskTargets::Classes(v) | TaskTargets::Tokens(v) => v.fill(crate::tasks::IGNORE),
                TaskTargets::Dense { mask, .. } => mask.fill(0.0),
                TaskTargets::Sequences { labels, .. } => labels.fill(crate::tasks::IGNORE),
            }
        }
    }
    b
}

/// Steps per timed sample of the weighting benchmark: recorded back to back, then one wait,
/// so a method that reads back mid-step pays for the lost overlap.
const STEPS_PER_SAMPLE: usize = 3;

/// Times steps over every task under each of `opts.weighting`, the methods interleaved round
/// by round (so drift hits them alike), each with its own freshly built trainer; reports
/// ms/step, the ratio to the first method and the peak memory of each.
fn run_weighting(
    gpu: &Gpu,
    opts: &TrainBench,
    spec: &ModelSpec,
    params: &HostParams,
) -> Result<Report> {
    let tasks = spec.tasks.len();
    let batches: Vec<Batch> = (0..tasks)
        .map(|t| one_task_batch(opts.batch, opts.seq, t))
        .collect();
    let own: Vec<usize> = (0..tasks).collect();
    let options = bench_options();
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); opts.weighting.len()];
    let mut peaks = vec![0u64; opts.weighting.len()];
    let rounds = opts.runs.samples.max(1);
    for round in 0..rounds {
        for (m, &method) in opts.weighting.iter().enumerate() {
            gpu.wait_idle()?;
            gpu.reset_peak_memory();
            let config = TrainConfig {
                weighting: method,
                mixing: Mixing::AllTasks,
                ..Default::default()
            };
            let model = MultiTaskModel::new(gpu, spec.clone(), params)?;
            let mut trainer = Trainer::new(model, options)?;
            trainer.weighter = Weighter::new(&config, tasks, 100);
            let mut step = || -> Result<()> {
                gpu.block_on(trainer.train_batches_async(&batches, Some(&own)))??;
                Ok(())
            };
            for _ in 0..opts.runs.warmup.max(1) {
                step()?;
            }
            gpu.wait_idle()?;
            let start = std::time::Instant::now();
            for _ in 0..STEPS_PER_SAMPLE {
                step()?;
            }
            gpu.wait_idle()?;
            samples[m].push(start.elapsed().as_secs_f64() / STEPS_PER_SAMPLE as f64);
            peaks[m] = peaks[m].max(gpu.pool_stats().peak_in_use);
            drop(trainer);
            if round == 0 {
                eprintln!("  {} measured once", method.name());
            }
        }
    }
    let mut results = Vec::new();
    let mut first_ms = None;
    for (m, &method) in opts.weighting.iter().enumerate() {
        let mut result = BenchResult::from_samples(
            "train_all_tasks",
            &opts.model,
            format!("{} b{}x{tasks} t{}", method.name(), opts.batch, opts.seq),
            &samples[m],
            None,
            None,
        );
        let ms = result.median_ms;
        let base = *first_ms.get_or_insert(ms);
        result.tokens_per_s = Some((tasks * opts.batch * opts.seq) as f64 / (ms / 1e3));
        result.peak_mem_mb = Some(peaks[m] as f64 / (1 << 20) as f64);
        result.peak_mem_kind = Some(
            "device memory in use by this method's trainer at its peak (pooled buffers and \
             textures held by live tensors)"
                .into(),
        );
        println!(
            "train {} all_tasks {:<11} b{}x{tasks} t{}: {:.0} ms/step (min {:.0}), {:.3}x {}, peak {:.0} MiB in use",
            opts.model,
            method.name(),
            opts.batch,
            opts.seq,
            ms,
            result.min_ms,
            ms / base,
            opts.weighting[0].name(),
            result.peak_mem_mb.unwrap_or_default(),
        );
        results.push(result);
    }
    Ok(Report {
        framework: format!("taskgate {}", env!("CARGO_PKG_VERSION")),
        device: device_name(gpu),
        timing: format!(
            "wall clock per step over every task: {STEPS_PER_SAMPLE} steps recorded back to \
             back, then one wait; methods interleaved, {rounds} rounds"
        ),
        results,
    })
}

/// Times training steps; prints the per-kernel-family profile when asked.
pub fn run(gpu: &Gpu, opts: &TrainBench) -> Result<Report> {
    let spec = bench_spec(&opts.model)?;
    if opts.seq > spec.encoder.max_positions || opts.seq == 0 || opts.batch == 0 {
        bail!(
            "--seq must be in 1..={} and --batch at least 1",
            spec.encoder.max_positions
        );
    }
    let mut params = HostParams::new();
    init_missing(&spec, &mut params)?;
    if !opts.weighting.is_empty() {
        return run_weighting(gpu, opts, &spec, &params);
    }
    gpu.reset_peak_memory();
    let model = MultiTaskModel::new(gpu, spec, &params)?;
    drop(params);
    let options = bench_options();
    let mut trainer = Trainer::new(model, options)?;
    let batch = synthetic_batch(opts.batch, opts.seq);
    let samples = measure(gpu, opts.runs, true, || {
        trainer.train_step(&batch).map(|_| ())
    })?;
    let stats = gpu.pool_stats();
    let mut result = BenchResult::from_samples(
        "train",
        &opts.model,
        format!("b{} t{}", opts.batch, opts.seq),
        &samples,
        None,
        None,
    );
    result.tokens_per_s = Some((opts.batch * opts.seq) as f64 / (result.median_ms / 1e3));
    result.peak_mem_mb = Some(stats.peak_allocated as f64 / (1 << 20) as f64);
    result.peak_mem_kind =
        Some("device memory allocated by taskgate (buffers and textures, pooled)".into());
    println!(
        "train {} b{} t{}: {:.0} ms/step (min {:.0}), {:.1} tokens/s, peak {:.0} MiB allocated ({:.0} MiB in use)",
        opts.model,
        opts.batch,
        opts.seq,
        result.median_ms,
        result.min_ms,
        result.tokens_per_s.unwrap_or_default(),
        result.peak_mem_mb.unwrap_or_default(),
        stats.peak_in_use as f64 / (1 << 20) as f64
    );
    if opts.profile {
        let mode = gpu.start_profiling()?;
        trainer.train_step(&batch)?;
        let times = gpu.stop_profiling()?;
        print!("{}", profile_table(&times, mode));
    }
    Ok(Report {
        framework: format!("taskgate {}", env!("CARGO_PKG_VERSION")),
        device: device_name(gpu),
        timing: "wall clock per step (submitted and completed)".into(),
        results: vec![result],
    })
}

/// Share of step time per kernel family (the shader file) and per kernel.
pub fn profile_table(times: &[crate::gpu::KernelTime], mode: crate::gpu::ProfileMode) -> String {
    use std::collections::BTreeMap;
    let total: f64 = times.iter().map(|t| t.seconds).sum();
    let mut families: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
    for t in times {
        let family = t.label.split(".wgsl").next().unwrap_or(&t.label);
        let e = families.entry(family).or_default();
        e.0 += t.seconds;
        e.1 += 1;
    }
    let mut rows: Vec<_> = families.into_iter().collect();
    rows.sort_by(|a, b| b.1.0.total_cmp(&a.1.0));
    let mut out = format!(
        "profile of one step ({mode:?}): {:.0} ms in {} dispatches\n{:<20} {:>10} {:>7} {:>6}\n",
        total * 1e3,
        times.len(),
        "kernel family",
        "ms",
        "share",
        "calls"
    );
    for (family, (seconds, calls)) in rows {
        out.push_str(&format!(
            "{family:<20} {:>10.1} {:>6.1}% {calls:>6}\n",
            seconds * 1e3,
            100.0 * seconds / total.max(f64::MIN_POSITIVE)
        ));
    }
    out
}
