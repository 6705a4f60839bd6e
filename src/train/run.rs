//! `taskgate train`: a whole multi-task training run from a config file: data loading and
//! checks (before anything is written), the step loop with the task sampler, periodic dev
//! evaluation, best and last checkpoints, a JSONL log and an SVG chart, and exact resumption.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

use super::chart::{Series, write_chart};
use super::checkpoint::{self, Best, RunState};
use super::eta::{Eta, evals_left};
use super::run_dir::{ResumePoint, RunDir};
use super::schedule::LrSchedule;
use super::trainer::{StepOutput, TrainOptions, Trainer};
use crate::config::{
    DataSource, ModelConfig, SamplerKind, TaskConfig, TaskSpec, TrainConfig, resolve_path,
};
use crate::data::sampler::Sampler;
use crate::data::splits::{EvalSet, Split, infer_missing_labels, load_eval_split, load_split};
use crate::data::{Example, collate};
use crate::eval::evaluate_task;
use crate::fault;
use crate::gpu::{AdapterRequest, Gpu};
use crate::metrics::Metrics;
use crate::model::MultiTaskModel;
use crate::model::init::init_from_config;
use crate::model::store::arena_capacity;
use crate::ops::adamw::AdamW;
use crate::tokenize::TextTokenizer;

pub use super::run_dir::{BEST, CHART_FILE, LAST, LOG_FILE, RUN_CONFIG};

/// What to run.
pub struct RunOptions {
    /// The config file of a fresh run (`None` when resuming).
    pub config: Option<PathBuf>,
    /// The run directory (created by a fresh run; read and continued by a resumed one).
    pub out: PathBuf,
    pub resume: bool,
    /// Train only this task (a single-task model).
    pub only: Option<String>,
    /// Overrides `[train] steps` (fresh runs).
    pub steps: Option<u64>,
    /// Show a progress bar (it hides itself when stderr is not a terminal).
    pub progress: bool,
}

/// The figures of a finished run.
pub struct RunSummary {
    pub steps: u64,
    pub tokens_per_s: f64,
    pub dev: Vec<(String, Metrics)>,
    pub best: Option<Best>,
}

/// Every task's examples of one split (`None` where a task has no file for it).
type SplitData = Vec<Option<Vec<Example>>>;

fn load_all(
    tasks: &[TaskSpec],
    sources: &[DataSource],
    split: Split,
    tokenizer: &TextTokenizer,
) -> Result<SplitData> {
    (0..tasks.len())
        .map(|i| load_split(tasks, sources, i, split, tokenizer))
        .collect()
}

/// Every task's dev or test set, for evaluation; warns about labels training never saw.
pub fn load_eval_sets(
    tasks: &[TaskSpec],
    sources: &[DataSource],
    split: Split,
    tokenizer: &TextTokenizer,
) -> Result<Vec<Option<EvalSet>>> {
    let sets: Vec<Option<EvalSet>> = (0..tasks.len())
        .map(|i| load_eval_split(tasks, sources, i, split, tokenizer))
        .collect::<Result<_>>()?;
    for (task, set) in tasks.iter().zip(&sets) {
        if let Some(warning) = set.as_ref().and_then(|s| s.warning(task)) {
            eprintln!("warning: {warning}");
        }
    }
    Ok(sets)
}

/// [`resolve_paths`], then every missing label set inferred from its training file, and the
/// result checked: the configuration a fresh run trains with.
pub fn resolve_fresh(config_path: &Path, only: Option<&str>) -> Result<ModelConfig> {
    let mut config = resolve_paths(config_path, only)?;
    let mut tasks: Vec<TaskSpec> = config.tasks.iter().map(TaskConfig::spec).collect();
    let sources: Vec<DataSource> = config.tasks.iter().map(TaskConfig::source).collect();
    infer_missing_labels(&mut tasks, &sources)?;
    config.tasks = tasks
        .iter()
        .zip(&sources)
        .map(|(task, source)| TaskConfig::from_parts(task, source))
        .collect();
    config
        .validate()
        .map_err(|e| anyhow!("{}: {e}", config_path.display()))?;
    Ok(config)
}

/// Loads `config_path`, makes every data path absolute (relative ones are relative to the
/// config file, or to the working directory) and applies `--only`; reads no data file.
pub fn resolve_paths(config_path: &Path, only: Option<&str>) -> Result<ModelConfig> {
    let mut config = ModelConfig::load(config_path)?;
    if let Some(name) = only {
        let Some(index) = config.task_index(name) else {
            let names: Vec<&str> = config.tasks.iter().map(|t| t.name.as_str()).collect();
            bail!(
                "--only {name}: no such task in {} (tasks: {})",
                config_path.display(),
                names.join(", ")
            );
        };
        config.tasks = vec![config.tasks.swap_remove(index)];
    }
    // A path from the config, found beside it (or in the working directory), made absolute.
    let absolute = |slot: &mut Option<PathBuf>, what: &str| -> Result<()> {
        if let Some(p) = slot.take() {
            let found = resolve_path(config_path, &p, what)
                .map_err(|e| anyhow!("{}: {e}", config_path.display()))?;
            let full = std::fs::canonicalize(&found)
                .with_context(|| format!("cannot resolve {}", found.display()))?;
            *slot = Some(full);
        }
        Ok(())
    };
    for task in &mut config.tasks {
        let name = task.name.clone();
        absolute(&mut task.train, &format!("task '{name}' train file"))?;
        absolute(&mut task.dev, &format!("task '{name}' dev file"))?;
        absolute(&mut task.test, &format!("task '{name}' test file"))?;
        if task.train.is_none() {
            bail!(
                "{}: task '{name}' has no `train` file; add `train = \"path\"` to its [[task]]",
                config_path.display()
            );
        }
    }
    absolute(
        &mut config.encoder.pretrained,
        "[encoder] pretrained directory",
    )?;
    absolute(&mut config.encoder.tokenizer, "[encoder] tokenizer")?;
    Ok(config)
}

/// A run's log: every record in memory (for the chart) and appended to `log.jsonl`.
struct RunLog {
    path: PathBuf,
    records: Vec<Value>,
}

impl RunLog {
    /// Opens the log of `dir`, keeping only records up to `step` (a resumed run rewrites
    /// what the interrupted run logged after its last checkpoint).
    fn open(dir: &Path, step: u64) -> Result<Self> {
        let path = dir.join(LOG_FILE);
        let mut records = Vec::new();
        let text = match std::fs::read(&path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        // (a line cut short by a crash does not parse and is dropped)
        for line in text.lines() {
            if let Ok(v) = serde_json::from_str::<Value>(line)
                && v["step"].as_u64().is_some_and(|s| s <= step)
            {
                records.push(v);
            }
        }
        let log = Self { path, records };
        log.rewrite()?;
        Ok(log)
    }

    fn rewrite(&self) -> Result<()> {
        let text: String = self.records.iter().map(|r| format!("{r}\n")).collect();
        crate::model::host::write_atomic(&self.path, text.as_bytes())
    }

    /// Waits until the lines so far are on disk (before a checkpoint: a checkpoint never gets
    /// ahead of its log, even across a power loss).
    fn sync(&self) -> Result<()> {
        match std::fs::File::open(&self.path) {
            Ok(f) => f
                .sync_all()
                .with_context(|| format!("cannot write {}", self.path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", self.path.display())),
        }
    }

    fn push(&mut self, record: Value) -> Result<()> {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&self.path)
            .with_context(|| format!("cannot append to {}", self.path.display()))?;
        // Written in two halves around a fault point, so that the crash tests also cut a
        // line in the middle (a resumed run drops such a line: see `open`).
        let line = format!("{record}\n");
        let (first, rest) = line.as_bytes().split_at(line.len() / 2);
        let what = || format!("cannot append to {}", self.path.display());
        file.write_all(first).with_context(what)?;
        fault::point("log:half-line");
        file.write_all(rest).with_context(what)?;
        self.records.push(record);
        Ok(())
    }

    /// Loss lines per task and, per task, a line of its primary dev metric.
    fn series(&self, tasks: &[TaskSpec]) -> (Vec<Series>, Vec<Series>) {
        let line = |i: usize, name: String| Series {
            name,
            color: i,
            points: Vec::new(),
        };
        let mut losses: Vec<Series> = tasks
            .iter()
            .enumerate()
            .map(|(i, t)| line(i, t.name.clone()))
            .collect();
        let mut metrics: Vec<Series> = tasks
            .iter()
            .enumerate()
            .map(|(i, t)| line(i, format!("{} {}", t.name, t.kind.primary_metric())))
            .collect();
        for r in &self.records {
            let step = r["step"].as_f64().unwrap_or(0.0);
            for (i, t) in tasks.iter().enumerate() {
                match r["kind"].as_str() {
                    Some("train") => {
                        if let Some(v) = r["loss"][&t.name].as_f64() {
                            losses[i].points.push((step, v));
                        }
                    }
                    Some("eval") => {
                        if let Some(v) = r["metrics"][&t.name][t.kind.primary_metric()].as_f64() {
                            metrics[i].points.push((step, v));
                        }
                    }
                    _ => {}
                }
            }
        }
        metrics.retain(|s| !s.points.is_empty());
        (losses, metrics)
    }
}

/// Runs (or resumes) training as `options` says.
pub fn run(request: &AdapterRequest, options: &RunOptions) -> Result<RunSummary> {
    let out = &options.out;
    // A resumed run: the directory locked and tidied first, then its configuration and the
    // newest complete checkpoint (or step 0 when none was written yet).
    let mut opened = None;
    let (config, config_path, mut resumed) = if options.resume {
        let (run_dir, point, warnings) = RunDir::open(out)?;
        for warning in warnings {
            eprintln!("warning: {warning}; using an older checkpoint");
        }
        let run_config = run_dir.join(RUN_CONFIG);
        let config = ModelConfig::load(&run_config)?;
        let loaded = match point {
            ResumePoint::Checkpoint(found) => Some(
                checkpoint::load(&found.dir)
                    .with_context(|| format!("cannot resume from {}", found.dir.display()))?,
            ),
            ResumePoint::Start => {
                eprintln!(
                    "{} has no checkpoint yet: starting its run again from step 0 with {}",
                    out.display(),
                    run_config.display()
                );
                None
            }
        };
        opened = Some(run_dir);
        (config, run_config, loaded)
    } else {
        let config_path = options
            .config
            .as_deref()
            .ok_or_else(|| anyhow!("give a CONFIG.toml or --resume DIR"))?;
        let mut config = resolve_fresh(config_path, options.only.as_deref())?;
        let train = config.train.get_or_insert_with(TrainConfig::default);
        if let Some(steps) = options.steps {
            train.steps = Some(steps);
            train.epochs = None;
        }
        train
            .validate()
            .map_err(|e| anyhow!("{}: {e}", config_path.display()))?;
        (config, config_path.to_path_buf(), None)
    };
    let train_config = config.train.clone().unwrap_or_default();
    // The adapter first: a fresh model's sizes are checked against its limits before any
    // parameter is allocated.
    let gpu = pollster::block_on(Gpu::new(request))?;

    // The model: fresh (pretrained encoder + new tasks) or the checkpoint.
    let (spec, params, tokenizer_json) = match resumed.as_mut() {
        Some(c) => (
            c.model.spec.clone(),
            std::mem::take(&mut c.model.params), // moved: the host holds one copy
            c.model.tokenizer_json.clone(),
        ),
        None => {
            let model = init_from_config(&config, &config_path, Some(arena_capacity(&gpu)))?;
            for note in &model.notes {
                eprintln!("{note}");
            }
            (model.spec, model.params, model.tokenizer_json)
        }
    };
    let tokenizer = TextTokenizer::from_bytes(&tokenizer_json, spec.encoder.max_length)?;

    // Every data file is read and checked before anything is written.
    let sources: Vec<DataSource> = config.tasks.iter().map(TaskConfig::source).collect();
    let train_data = load_all(&spec.tasks, &sources, Split::Train, &tokenizer)?;
    let dev_data = load_eval_sets(&spec.tasks, &sources, Split::Dev, &tokenizer)?;
    let lengths: Vec<Vec<usize>> = train_data
        .iter()
        .map(|d| {
            d.as_ref().map_or_else(Vec::new, |ex| {
                ex.iter().map(|e| e.encoded.ids.len()).collect()
            })
        })
        .collect();
    let mut sampler = Sampler::new(
        train_config.sampler,
        train_config.temperature,
        train_config.seed,
        train_config.batch_size,
        lengths,
    );
    let total_steps = match (&resumed, train_config.steps, train_config.epochs) {
        (Some(c), _, _) => c.state.total_steps,
        (None, Some(s), _) => s,
        (None, None, Some(e)) => ((e * sampler.batches_per_epoch() as f64).ceil() as u64).max(1),
        (None, None, None) => sampler.batches_per_epoch(),
    };

    let mut run_dir = match opened {
        Some(run_dir) => run_dir,
        None => {
            let run_dir = RunDir::create(out)?;
            let header =
                "# The resolved configuration of this run (absolute paths, inferred labels).\n\n";
            crate::model::host::write_atomic(
                &run_dir.join(RUN_CONFIG),
                format!("{header}{}", toml::to_string(&config)?).as_bytes(),
            )?;
            fault::point("run:configured");
            run_dir
        }
    };

    let model = MultiTaskModel::new(&gpu, spec.clone(), &params)?;
    let schedule = LrSchedule {
        peak: train_config.lr,
        warmup: train_config.warmup_steps(total_steps),
        total: total_steps,
        decay: train_config.decay,
    };
    let adamw = AdamW {
        lr: train_config.lr,
        weight_decay: train_config.weight_decay,
        ..AdamW::default()
    };
    let mut trainer = Trainer::new(
        model,
        TrainOptions {
            schedule,
            adamw,
            clip: train_config.clip,
        },
    )?;
    let mut state = RunState {
        step: 0,
        total_steps,
        sampler: sampler.state.clone(),
        group_steps: Vec::new(),
        best: None,
        tokens: 0,
        elapsed_s: 0.0,
    };
    if let Some(c) = &resumed {
        let file = |name: &str| c.dir.join(name).display().to_string();
        trainer
            .optimizer
            .restore(&c.m, &c.v, &c.state.group_steps)
            .map_err(|e| {
                anyhow!(
                    "{} and {}: {e}; the checkpoint is damaged, or was written on an adapter \
                     with another buffer-binding limit: resume on the adapter that wrote it \
                     (--adapter), or start a new run",
                    file(checkpoint::OPTIMIZER_FILE),
                    file(checkpoint::STATE_FILE)
                )
            })?;
        trainer.step = c.state.step;
        sampler.restore(c.state.sampler.clone()).map_err(|e| {
            anyhow!(
                "{}: {e}; the checkpoint is damaged or belongs to another configuration: \
                 resume from an intact copy of the run, or start a new run",
                file(checkpoint::STATE_FILE)
            )
        })?;
        state = c.state.clone();
    }
    let mut log = RunLog::open(out, state.step)?;
    let task_names: Vec<String> = spec.tasks.iter().map(|t| t.name.clone()).collect();
    let pad_id = tokenizer.pad_id();

    let bar = progress_bar(options.progress, total_steps, state.step);
    let adapter = gpu.adapter_info().name.clone();
    let shares = || {
        task_names
            .iter()
            .zip(sampler.probabilities())
            .map(|(name, p)| format!("{name} {p:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let how = match train_config.sampler {
        SamplerKind::RoundRobin => "sampler round_robin (each task in turn)".to_string(),
        SamplerKind::Proportional => format!("sampler proportional (p: {})", shares()),
        SamplerKind::Temperature => format!(
            "sampler temperature, T = {} (p: {})",
            train_config.temperature,
            shares()
        ),
    };
    let header = if state.step >= total_steps {
        format!("the run is complete (step {total_steps} of {total_steps}): nothing to train")
    } else {
        format!(
            "training {} task(s) on {adapter}: steps {}..{total_steps}, batch {}, {how}",
            task_names.len(),
            state.step + 1,
            train_config.batch_size,
        )
    };
    say(&bar, header);
    let started = Instant::now();
    let elapsed_before = state.elapsed_s;
    let tokens_before = state.tokens;
    let mut pending: Vec<(usize, StepOutput)> = Vec::new();
    let mut last_dev: Vec<(String, Metrics)> = Vec::new();
    // Wall-clock time of training steps alone (evaluations and checkpoints apart), for the
    // ETA and tokens/s.
    let mut eta = Eta::default();
    let mut mark = (Instant::now(), state.step);
    while state.step < total_steps {
        let (task, indices) = sampler.next_batch();
        let examples: Vec<Example> = {
            let pool = train_data[task]
                .as_ref()
                .expect("the sampler draws tasks with examples");
            indices.iter().map(|&i| pool[i].clone()).collect()
        };
        let batch = collate(&examples, &spec.tasks, pad_id);
        state.tokens += batch.attention.iter().map(|&a| a as u64).sum::<u64>();
        pending.push((task, trainer.train_step(&batch)?));
        state.step += 1;
        let step = state.step;
        bar.set_position(step);

        let last = step == total_steps;
        let eval_now =
            last || (train_config.eval_every > 0 && step.is_multiple_of(train_config.eval_every));
        // A checkpoint step always logs, so that nothing pending is lost with the process and
        // a resumed run logs exactly what the uninterrupted one does.
        if step.is_multiple_of(train_config.log_every) || eval_now {
            let mut sums = vec![(0.0f64, 0usize); task_names.len()];
            let mut lr = 0.0;
            for (task, output) in pending.drain(..) {
                let stats = output.read()?;
                lr = stats.lr;
                if let Some(Some(loss)) = stats.task_losses.get(task) {
                    if !loss.is_finite() {
                        bail!(
                            "training diverged at step {step}: task '{}' loss is {loss}; lower [train] lr (now {}) or raise clip",
                            task_names[task],
                            train_config.lr
                        );
                    }
                    sums[task].0 += *loss as f64;
                    sums[task].1 += 1;
                }
            }
            // (the readback above waited for the GPU: the steps so far are done)
            eta.add_steps(step - mark.1, mark.0.elapsed().as_secs_f64());
            mark = (Instant::now(), step);
            let elapsed = elapsed_before + started.elapsed().as_secs_f64();
            let training_s = (started.elapsed().as_secs_f64() - eta.eval_secs()).max(1e-9);
            let tokens_per_s = (state.tokens - tokens_before) as f64 / training_s;
            let losses: serde_json::Map<String, Value> = sums
                .iter()
                .zip(&task_names)
                .filter(|((_, n), _)| *n > 0)
                .map(|((s, n), name)| (name.clone(), json!(s / *n as f64)))
                .collect();
            let left = eta
                .remaining(
                    total_steps - step,
                    evals_left(step, total_steps, train_config.eval_every),
                )
                .map(|d| format!("ETA {} | ", indicatif::HumanDuration(d)))
                .unwrap_or_default();
            let status = format!(
                "{left}{tokens_per_s:.0} tok/s | {}",
                losses
                    .iter()
                    .map(|(k, v)| format!("{k} {:.3}", v.as_f64().unwrap_or(0.0)))
                    .collect::<Vec<_>>()
                    .join("  ")
            );
            if bar.is_hidden() && (step.is_multiple_of(5 * train_config.log_every) || last) {
                // No terminal (a log file, CI): a plain line now and then instead of the bar.
                eprintln!("step {step}/{total_steps} {status}");
            }
            bar.set_message(status);
            log.push(
                json!({"kind": "train", "step": step, "lr": lr, "loss": losses,
                "tokens_per_s": tokens_per_s, "elapsed_s": elapsed}),
            )?;
        }

        if eval_now {
            let eval_started = Instant::now();
            state.elapsed_s = elapsed_before + started.elapsed().as_secs_f64();
            state.sampler = sampler.state.clone();
            state.group_steps = trainer.optimizer.group_steps().to_vec();
            let mut metrics = serde_json::Map::new();
            last_dev.clear();
            let mut scores = Vec::new();
            for (i, task) in spec.tasks.iter().enumerate() {
                if let Some(dev) = &dev_data[i] {
                    let m = evaluate_task(&trainer.model, i, dev, pad_id)?;
                    if let Some(v) = m.get(task.kind.primary_metric()) {
                        scores.push(v);
                    }
                    metrics.insert(task.name.clone(), serde_json::to_value(&m.0)?);
                    last_dev.push((task.name.clone(), m));
                }
            }
            let score =
                (!scores.is_empty()).then(|| scores.iter().sum::<f64>() / scores.len() as f64);
            if !metrics.is_empty() {
                say(
                    &bar,
                    format!("step {step}/{total_steps} dev: {}", describe(&last_dev)),
                );
                log.push(json!({"kind": "eval", "step": step, "split": "dev", "metrics": metrics, "score": score}))?;
            }
            let improved = match (score, state.best) {
                (Some(s), Some(b)) => s > b.score,
                (Some(_), None) => true,
                (None, _) => last,
            };
            if improved {
                state.best = Some(Best {
                    step,
                    score: score.unwrap_or(f64::NAN),
                });
                log.sync()?;
                checkpoint::save(out, BEST, &trainer, &tokenizer_json, &sources, &state)?;
                run_dir.keep(); // a checkpoint exists: keep the directory from here on
            }
            log.sync()?;
            checkpoint::save(out, LAST, &trainer, &tokenizer_json, &sources, &state)?;
            run_dir.keep();
            let (losses, metric_lines) = log.series(&spec.tasks);
            write_chart(&out.join(CHART_FILE), &losses, &metric_lines)?;
            fault::point("run:chart");
            eta.add_eval(eval_started.elapsed().as_secs_f64());
            mark = (Instant::now(), step);
        }
        fault::point("run:step");
    }
    bar.finish_and_clear();
    let trained_s = started.elapsed().as_secs_f64() - eta.eval_secs();
    Ok(RunSummary {
        steps: state.step,
        tokens_per_s: (state.tokens - tokens_before) as f64 / trained_s.max(1e-9),
        dev: last_dev,
        best: state.best,
    })
}

/// `task metric value ...` for a status line.
pub fn describe(metrics: &[(String, Metrics)]) -> String {
    metrics
        .iter()
        .map(|(task, m)| {
            let parts: Vec<String> =
                m.0.iter()
                    .filter(|(k, _)| k.as_str() != "examples")
                    .map(|(k, v)| format!("{k} {v:.4}"))
                    .collect();
            format!("{task}: {}", parts.join(", "))
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Prints a line above the progress bar, or plainly when the bar is hidden (not a terminal).
fn say(bar: &indicatif::ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

fn progress_bar(show: bool, total: u64, start: u64) -> indicatif::ProgressBar {
    let bar = if show {
        indicatif::ProgressBar::new(total)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        // (the ETA is in the message: see `Eta`)
        indicatif::ProgressStyle::with_template("{bar:30} step {pos}/{len}  {msg}")
            .expect("a valid template"),
    );
    bar.set_position(start);
    bar
}
