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
use crate::train::steps::trainer_with_options;
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
    /// Target tokens of a fourth task, a generation task (2-layer decoder warm-started from
    /// the encoder, output tied to the word embeddings); 0: no generation task.
    pub generation: usize,
    /// Parameter-name prefixes to freeze (`[train] freeze`): steps are timed with every
    /// parameter trained and with these frozen, interleaved; empty: no comparison.
    pub freeze: Vec<String>,
}

/// The benchmarks' generation task: a 2-layer decoder (sizes otherwise following the
/// encoder's once the spec resolves them) for targets of up to `max_length` tokens.
pub fn generation_task(max_length: usize) -> TaskSpec {
    let mut task = TaskSpec::new("generation", TaskKind::GENERATION);
    task.decoder = Some(crate::config::DecoderConfig {
        layers: Some(2),
        max_length: Some(max_length.max(1)),
        ..Default::default()
    });
    task
}

/// `spec` with [`generation_task`] appended over a vector gate, targets of up to `target`
/// tokens.
pub fn with_generation(mut spec: ModelSpec, target: usize) -> ModelSpec {
    let mut task = generation_task(target);
    task.gate = GateMode::Vector;
    spec.tasks.push(task);
    spec.resolve_decoders();
    spec
}

/// Teacher-forced targets padded to `target` tokens: row `r` carries `target - r % target`
/// of them (`[BOS] t1 ..` in, `t1 .. [EOS]` out), the rest padding, as a batch of targets of
/// mixed lengths does (the rows labelled: (target + 1) / (2 target) of them, 60% at 5).
pub fn synthetic_sequences(batch: usize, target: usize) -> TaskTargets {
    let target = target.max(1);
    let token = |i: usize| (1000 + (i * 104_729) % 20000) as u32;
    let mut inputs = vec![0u32; batch * target];
    let mut labels = vec![crate::tasks::IGNORE; batch * target];
    for r in 0..batch {
        let n = target - r % target;
        for k in 0..n {
            let at = r * target + k;
            inputs[at] = if k == 0 { 101 } else { token(at - 1) };
            labels[at] = token(at) as i32;
        }
    }
    TaskTargets::Sequences {
        inputs,
        labels,
        seq: target,
    }
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

/// Times one-batch steps of the same model with every parameter trained and with
/// `opts.freeze` frozen (two trainers, their samples interleaved round by round); reports
/// ms/step and the frozen one's ratio to the full one.
fn run_freeze(
    gpu: &Gpu,
    opts: &TrainBench,
    spec: &ModelSpec,
    params: &HostParams,
    batch: &Batch,
) -> Result<Report> {
    let variants: [(&str, Vec<String>); 2] =
        [("trained", Vec::new()), ("frozen", opts.freeze.clone())];
    let mut trainers = Vec::new();
    for (_, freeze) in &variants {
        let config = TrainConfig {
            freeze: freeze.clone(),
            ..Default::default()
        };
        let model = MultiTaskModel::new(gpu, spec.clone(), params)?;
        let trainer =
            trainer_with_options(model, &config, bench_options(), 1).map_err(|(e, _)| e)?;
        trainers.push(trainer);
    }
    for trainer in &mut trainers {
        for _ in 0..opts.runs.warmup.max(1) {
            trainer.train_step(batch)?;
        }
    }
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    for _ in 0..opts.runs.samples.max(1) {
        for (v, trainer) in trainers.iter_mut().enumerate() {
            gpu.wait_idle()?;
            let start = std::time::Instant::now();
            for _ in 0..STEPS_PER_SAMPLE {
                trainer.train_step(batch)?;
            }
            gpu.wait_idle()?;
            samples[v].push(start.elapsed().as_secs_f64() / STEPS_PER_SAMPLE as f64);
        }
    }
    let mut results = Vec::new();
    let mut first_ms = None;
    for ((name, freeze), samples) in variants.iter().zip(&samples) {
        let shape = match freeze.is_empty() {
            true => format!("{} {name}", step_shape(opts)),
            false => format!("{} {name} {}", step_shape(opts), freeze.join(",")),
        };
        let mut result = BenchResult::from_samples(
            "train_freeze",
            &opts.model,
            shape.clone(),
            samples,
            None,
            None,
        );
        let ms = result.median_ms;
        let base = *first_ms.get_or_insert(ms);
        result.tokens_per_s = Some((opts.batch * opts.seq) as f64 / (ms / 1e3));
        println!(
            "train {} {shape}: {ms:.0} ms/step (min {:.0}), {:.3}x the fully trained step",
            opts.model,
            result.min_ms,
            ms / base
        );
        results.push(result);
    }
    Ok(Report {
        framework: format!("taskgate {}", env!("CARGO_PKG_VERSION")),
        device: device_name(gpu),
        timing: format!(
            "wall clock per step: {STEPS_PER_SAMPLE} steps recorded back to back, then one \
             wait; trained and frozen interleaved, {} rounds",
            opts.runs.samples.max(1)
        ),
        results,
    })
}

/// Times training steps; prints the per-kernel-family profile when asked.
pub fn run(gpu: &Gpu, opts: &TrainBench) -> Result<Report> {
    let mut spec = bench_spec(&opts.model)?;
    if opts.generation > 0 {
        spec = with_generation(spec, opts.generation);
    }
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
    let mut batch = synthetic_batch(opts.batch, opts.seq);
    if opts.generation > 0 {
        batch
            .targets
            .push(synthetic_sequences(opts.batch, opts.generation));
    }
    if !opts.freeze.is_empty() {
        return run_freeze(gpu, opts, &spec, &params, &batch);
    }
    gpu.reset_peak_memory();
    let model = MultiTaskModel::new(gpu, spec, &params)?;
    drop(params);
    let options = bench_options();
    let mut trainer = Trainer::new(model, options)?;
    let samples = measure(gpu, opts.runs, true, || {
        trainer.train_step(&batch).map(|_| ())
    })?;
    let stats = gpu.pool_stats();
    let mut result =
        BenchResult::from_samples("train", &opts.model, step_shape(opts), &samples, None, None);
    result.tokens_per_s = Some((opts.batch * opts.seq) as f64 / (result.median_ms / 1e3));
    result.peak_mem_mb = Some(stats.peak_allocated as f64 / (1 << 20) as f64);
    result.peak_mem_kind =
        Some("device memory allocated by taskgate (buffers and textures, pooled)".into());
    println!(
        "train {} {}: {:.0} ms/step (min {:.0}), {:.1} tokens/s, peak {:.0} MiB allocated ({:.0} MiB in use)",
        opts.model,
        step_shape(opts),
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

/// The shape column of a step: `b16 t64`, with ` gen8` when a generation task's targets are
/// padded to 8 tokens.
fn step_shape(opts: &TrainBench) -> String {
    let mut shape = format!("b{} t{}", opts.batch, opts.seq);
    if opts.generation > 0 {
        shape.push_str(&format!(" gen{}", opts.generation));
    }
    shape
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::IGNORE;

    #[test]
    fn synthetic_sequences_are_teacher_forced_with_padding() {
        let TaskTargets::Sequences {
            inputs,
            labels,
            seq,
        } = synthetic_sequences(7, 5)
        else {
            panic!("sequences expected");
        };
        assert_eq!((seq, inputs.len(), labels.len()), (5, 35, 35));
        for r in 0..7 {
            let labels_r = &labels[r * 5..(r + 1) * 5];
            let inputs_r: Vec<i32> = inputs[r * 5..(r + 1) * 5]
                .iter()
                .map(|&i| i as i32)
                .collect();
            let n = 5 - r % 5;
            assert!(labels_r[..n].iter().all(|&l| l != IGNORE), "row {r}");
            assert!(labels_r[n..].iter().all(|&l| l == IGNORE), "row {r}");
            assert_eq!(inputs_r[0], 101, "row {r} starts with [BOS]");
            assert_eq!(
                inputs_r[1..n],
                labels_r[..n - 1],
                "row {r} is shifted by one"
            );
        }
        // One-token targets: every row is [BOS] -> t1.
        let TaskTargets::Sequences { labels, .. } = synthetic_sequences(3, 1) else {
            panic!("sequences expected");
        };
        assert!(labels.iter().all(|&l| l != IGNORE));
    }

    #[test]
    fn the_generation_task_is_added_with_a_resolved_decoder() {
        let spec = with_generation(bench_spec("tiny").unwrap(), 6);
        let task = spec.tasks.last().unwrap();
        assert_eq!(spec.tasks.len(), 4);
        assert_eq!(task.kind, TaskKind::GENERATION);
        let decoder = task.decoder.as_ref().unwrap();
        assert_eq!((decoder.layers, decoder.max_length), (Some(2), Some(6)));
        let encoder = &spec.encoder;
        assert_eq!(
            (decoder.heads, decoder.intermediate),
            (Some(encoder.heads), Some(encoder.intermediate))
        );
    }
}
