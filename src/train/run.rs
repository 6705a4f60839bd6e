//! `taskgate train`: a whole multi-task training run from a config file: data loading and
//! checks (before anything is written), the step loop with the task sampler, periodic dev
//! evaluation, best and last checkpoints, a JSONL log and an SVG chart, and exact resumption.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

use super::chart::{ChartLines, Series, write_chart};
use super::checkpoint::{self, Best, RunState};
use super::eta::{Eta, evals_left};
use super::run_dir::{ResumePoint, RunDir};
use super::steps::{Batches, StepRead, Steps, build_trainer, param_plan};
use super::trainer::ReduceStats;
use super::weighting::WeightingState;
use crate::config::{
    DataSource, Mixing, ModelConfig, SamplerKind, TaskConfig, TrainConfig, resolve_path,
};
use crate::data::Example;
use crate::data::sampler::Sampler;
use crate::data::splits::{
    EvalSet, Split, infer_missing_labels, load_eval_split, load_split, resolve_all_balanced_weights,
};
use crate::dist::{Comm, single};
use crate::eval::evaluate_task_on;
use crate::fault;
use crate::gpu::{AdapterRequest, Gpu};
use crate::metrics::Metrics;
use crate::model::host::HostParams;
use crate::model::init::{InitSource, init_from_config, init_with_source};
use crate::model::store::arena_capacity;
use crate::model::{ModelDir, ModelSpec, MultiTaskModel};
use crate::tasks::TaskSpec;
use crate::tokenize::TextTokenizer;

pub use super::run_dir::{BEST, CHART_FILE, LAST, LOG_FILE, RUN_CONFIG};

/// Asked after every evaluation with the step, the run's score and the dev metrics: true
/// stops the run there (its checkpoints are written; `--resume` would go on).
pub type StopRule =
    std::sync::Arc<dyn Fn(u64, Option<f64>, &[(String, Metrics)]) -> bool + Send + Sync>;

/// What to run.
#[derive(Clone, Default)]
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
    /// Overrides `[train] init_from` (fresh runs): a run or model directory to start from.
    pub init_from: Option<PathBuf>,
    /// Show a progress bar (it hides itself when stderr is not a terminal).
    pub progress: bool,
    /// Print nothing but warnings (a trial of `taskgate tune`).
    pub quiet: bool,
    /// Stops the run early when it says so (the median rule of `taskgate tune`).
    pub stop_rule: Option<StopRule>,
}

/// The figures of a finished run.
pub struct RunSummary {
    pub steps: u64,
    pub tokens_per_s: f64,
    pub dev: Vec<(String, Metrics)>,
    pub best: Option<Best>,
    /// The step the stop rule ended the run at, when it did.
    pub stopped_at: Option<u64>,
    /// A data-parallel run: its ranks, and what the gradient sums cost in this process.
    pub ranks: usize,
    pub reduce: ReduceStats,
    /// Wall-clock seconds of this process's training steps (evaluations apart).
    pub step_s: f64,
    /// Steps this process took.
    pub steps_here: u64,
    /// Steps after which every rank's parameters were found identical to rank 0's
    /// ([`CHECK_REPLICAS_ENV`]; `None` unchecked).
    pub replicas_checked: Option<u64>,
}

/// Environment variable: `1` checks after every step of a data-parallel run that every
/// rank's parameters are bit-identical to rank 0's (a hash of them broadcast), and stops
/// the job at the first difference.
pub const CHECK_REPLICAS_ENV: &str = "TASKGATE_CHECK_REPLICAS";

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

/// What a fresh `taskgate train CONFIG` trains on, in order: the tasks, each task's training
/// examples (tokenized), and the first `steps` steps' batches, each a task and the indices of
/// its examples (`export-data --batches`, to train another framework on the same batches).
pub struct BatchOrder {
    pub tasks: Vec<TaskSpec>,
    /// Each task's data files, as the resolved config names them.
    pub sources: Vec<DataSource>,
    pub pools: Vec<Vec<Example>>,
    pub steps: Vec<Vec<(usize, Vec<usize>)>>,
}

/// The [`BatchOrder`] of a fresh run of `config_path` (no adapter needed: the model is built
/// on the host only for its tokenizer and resolved tasks).
pub fn batch_order(config_path: &Path, steps: u64) -> Result<BatchOrder> {
    let config = resolve_fresh(config_path, None)?;
    let train = config.train.clone().unwrap_or_default();
    train
        .validate()
        .and_then(|()| train.validate_for_tasks(config.tasks.len()))
        .map_err(|e| anyhow!("{}: {e}", config_path.display()))?;
    let model = init_from_config(&config, config_path, None)?;
    let tokenizer =
        TextTokenizer::from_bytes(&model.tokenizer_json, model.spec.encoder.max_length)?;
    let sources: Vec<DataSource> = config.tasks.iter().map(TaskConfig::source).collect();
    let pools: Vec<Vec<Example>> = load_all(&model.spec.tasks, &sources, Split::Train, &tokenizer)?
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect();
    let mut batches = Batches::new(&train, pools.clone(), tokenizer.pad_id());
    let steps = (0..steps).map(|_| batches.sampler.next_step()).collect();
    Ok(BatchOrder {
        tasks: model.spec.tasks,
        sources,
        pools,
        steps,
    })
}

/// [`resolve_paths`], then every missing label set inferred from its training file, and the
/// result checked: the configuration a fresh run trains with.
pub fn resolve_fresh(config_path: &Path, only: Option<&str>) -> Result<ModelConfig> {
    let mut config = resolve_paths(config_path, only)?;
    let mut tasks = TaskSpec::all_in(&config, config_path)?;
    let sources: Vec<DataSource> = config.tasks.iter().map(TaskConfig::source).collect();
    infer_missing_labels(&mut tasks, &sources)?;
    resolve_all_balanced_weights(&mut tasks, &sources)
        .map_err(|e| anyhow!("{}: {e}", config_path.display()))?;
    config.tasks = tasks
        .iter()
        .zip(&sources)
        .map(|(task, source)| task.to_config(source))
        .collect();
    config
        .validate()
        .map_err(|e| anyhow!("{}: {e}", config_path.display()))?;
    Ok(config)
}

/// Loads `config_path` and checks every task against its kind (all of them, `--only` or not),
/// makes every data path absolute (relative ones are relative to the config file, or to the
/// working directory) and applies `--only`; reads no data file.
pub fn resolve_paths(config_path: &Path, only: Option<&str>) -> Result<ModelConfig> {
    let mut config = ModelConfig::load(config_path)?;
    TaskSpec::all_in(&config, config_path)?;
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
    if let Some(train) = config.train.as_mut() {
        absolute(&mut train.init_from, "[train] init_from directory")?;
    }
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
        crate::files::write_atomic(&self.path, text.as_bytes())
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
    fn series(&self, tasks: &[TaskSpec]) -> ChartLines {
        let line = |i: usize, name: String| Series {
            name,
            color: i,
            points: Vec::new(),
        };
        let per_task = |name: &dyn Fn(&TaskSpec) -> String| -> Vec<Series> {
            tasks
                .iter()
                .enumerate()
                .map(|(i, t)| line(i, name(t)))
                .collect()
        };
        let mut losses = per_task(&|t| t.name.clone());
        let mut metrics = per_task(&|t| format!("{} {}", t.name, t.kind.primary_metric()));
        let mut weights = per_task(&|t| t.name.clone());
        let mut cosines: Vec<Series> = Vec::new();
        for r in &self.records {
            let step = r["step"].as_f64().unwrap_or(0.0);
            for (i, t) in tasks.iter().enumerate() {
                match r["kind"].as_str() {
                    Some("train") => {
                        if let Some(v) = r["loss"][&t.name].as_f64() {
                            losses[i].points.push((step, v));
                        }
                        if let Some(v) = r["weights"][&t.name].as_f64() {
                            weights[i].points.push((step, v));
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
            if let Some(pairs) = r["cosines"].as_object() {
                for (name, v) in pairs {
                    let Some(v) = v.as_f64() else { continue };
                    let index = match cosines.iter().position(|s| &s.name == name) {
                        Some(index) => index,
                        None => {
                            cosines.push(line(cosines.len(), name.clone()));
                            cosines.len() - 1
                        }
                    };
                    cosines[index].points.push((step, v));
                }
            }
        }
        metrics.retain(|s| !s.points.is_empty());
        // Weights that never move (static, equal) say nothing: drawn only when they vary.
        let varies = weights
            .iter()
            .any(|s| s.points.windows(2).any(|w| (w[0].1 - w[1].1).abs() > 1e-9));
        if !varies {
            weights.clear();
        }
        ChartLines {
            losses,
            metrics,
            weights,
            cosines,
        }
    }
}

/// Runs (or resumes) training as `options` says.
pub fn run(request: &AdapterRequest, options: &RunOptions) -> Result<RunSummary> {
    run_on(request, options, single())
}

/// [`run`] as one rank of a data-parallel job (`comm`): rank 0 reads the configuration (or
/// the run directory) and hands it to the others, broadcasts the initial parameters, and is
/// the only one to write; every rank trains on its shard of each global batch and evaluates
/// its share of the dev sets.
pub fn run_on(request: &AdapterRequest, options: &RunOptions, comm: Comm) -> Result<RunSummary> {
    let mut training = Training::set_up(request, options, comm)?;
    training.train()?;
    Ok(training.finish())
}

/// Where a run starts: its configuration (and the file it came from) and, when resuming, the
/// locked run directory and the checkpoint to continue from.
struct Start {
    config: ModelConfig,
    config_path: PathBuf,
    opened: Option<RunDir>,
    resumed: Option<checkpoint::Loaded>,
}

impl Start {
    fn new(options: &RunOptions) -> Result<Self> {
        if options.resume {
            Self::resume(&options.out)
        } else {
            Self::fresh(options)
        }
    }

    /// Rank 0's start handed to every rank of a data-parallel job: rank 0 sends its resolved
    /// configuration and the checkpoint it resumes from; the others read that checkpoint
    /// (a shared file system, as the data files) and write nothing.
    /// Returns the start and whether rank 0 asks for the replica check
    /// ([`CHECK_REPLICAS_ENV`]: rank 0's environment decides for every rank).
    fn shared(leader: Option<Self>, comm: &Comm) -> Result<(Self, bool)> {
        let check_replicas = check_replicas_requested();
        let mut bytes = match &leader {
            Some(start) => serde_json::to_vec(&json!({
                "config": toml::to_string(&start.config)?,
                "config_path": start.config_path,
                "checkpoint": start.resumed.as_ref().map(|c| c.dir.clone()),
                "check_replicas": check_replicas,
            }))?,
            None => Vec::new(),
        };
        // (untimed: rank 0 may spend long reading the data and a checkpoint first)
        comm.broadcast_untimed(0, &mut bytes)?;
        if let Some(start) = leader {
            return Ok((start, check_replicas));
        }
        let sent: Value = serde_json::from_slice(&bytes)?;
        let check_replicas = sent["check_replicas"] == json!(true);
        let config_path = PathBuf::from(sent["config_path"].as_str().unwrap_or_default());
        let config = ModelConfig::parse(sent["config"].as_str().unwrap_or_default(), &config_path)?;
        let resumed = match sent["checkpoint"].as_str() {
            Some(dir) => Some(checkpoint::load(Path::new(dir)).with_context(|| {
                format!(
                    "rank {}: cannot read the checkpoint rank 0 resumes from ({dir}); every \
                     rank needs the run directory, as it needs the data files",
                    comm.rank()
                )
            })?),
            None => None,
        };
        let start = Self {
            config,
            config_path,
            opened: None,
            resumed,
        };
        Ok((start, check_replicas))
    }

    /// A resumed run: the directory locked and tidied first, then its configuration and the
    /// newest complete checkpoint (or step 0 when none was written yet).
    fn resume(out: &Path) -> Result<Self> {
        let (run_dir, point, warnings) = RunDir::open(out)?;
        for warning in warnings {
            eprintln!("warning: {warning}; using an older checkpoint");
        }
        let run_config = run_dir.join(RUN_CONFIG);
        let config = ModelConfig::load(&run_config)?;
        let resumed = match point {
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
        Ok(Self {
            config,
            config_path: run_config,
            opened: Some(run_dir),
            resumed,
        })
    }

    /// A fresh run: the config file resolved and checked, with `--only` and `--steps`.
    fn fresh(options: &RunOptions) -> Result<Self> {
        let config_path = options
            .config
            .as_deref()
            .ok_or_else(|| anyhow!("give a CONFIG.toml or --resume DIR"))?;
        let mut config = resolve_fresh(config_path, options.only.as_deref())?;
        let tasks = config.tasks.len();
        let train = config.train.get_or_insert_with(TrainConfig::default);
        if let Some(steps) = options.steps {
            train.steps = Some(steps);
            train.epochs = None;
        }
        if let Some(dir) = &options.init_from {
            let full = std::fs::canonicalize(dir).map_err(|e| {
                anyhow!(
                    "--init-from {}: {e}; give a run or model directory",
                    dir.display()
                )
            })?;
            train.init_from = Some(full);
        }
        train
            .validate()
            .and_then(|()| train.validate_for_tasks(tasks))
            .map_err(|e| anyhow!("{}: {e}", config_path.display()))?;
        Ok(Self {
            config,
            config_path: config_path.to_path_buf(),
            opened: None,
            resumed: None,
        })
    }

    /// The model to train: the checkpoint's (its parameters moved out: the host holds one
    /// copy) or a fresh one (pretrained encoder + new tasks, sized against `gpu`'s limits).
    fn model(&mut self, gpu: &Gpu, quiet: bool) -> Result<(ModelSpec, HostParams, Vec<u8>)> {
        Ok(match self.resumed.as_mut() {
            Some(c) => (
                c.model.spec.clone(),
                std::mem::take(&mut c.model.params),
                c.model.tokenizer_json.clone(),
            ),
            None => {
                let init_from = self.config.train.as_ref().and_then(|t| t.init_from.clone());
                let source = init_from.as_deref().map(init_source).transpose()?;
                let model = init_with_source(
                    &self.config,
                    &self.config_path,
                    Some(arena_capacity(gpu)),
                    source
                        .as_ref()
                        .map(|(dir, model)| InitSource { model, dir }),
                )?;
                for note in model.notes.iter().filter(|_| !quiet) {
                    eprintln!("{note}");
                }
                (model.spec, model.params, model.tokenizer_json)
            }
        })
    }

    /// The run's length: the checkpoint's, else `[train] steps`, else `epochs` of the
    /// sampler's epochs (at least one step), else one epoch.
    fn total_steps(&self, train: &TrainConfig, sampler: &Sampler) -> u64 {
        match (&self.resumed, train.steps, train.epochs) {
            (Some(c), _, _) => c.state.total_steps,
            (None, Some(s), _) => s,
            (None, None, Some(e)) => {
                ((e * sampler.batches_per_epoch() as f64).ceil() as u64).max(1)
            }
            (None, None, None) => sampler.batches_per_epoch(),
        }
    }

    /// The run directory: the resumed one, or a new one with the resolved configuration.
    fn run_dir(&mut self, out: &Path) -> Result<RunDir> {
        if let Some(run_dir) = self.opened.take() {
            return Ok(run_dir);
        }
        let run_dir = RunDir::create(out)?;
        let header =
            "# The resolved configuration of this run (absolute paths, inferred labels).\n\n";
        crate::files::write_atomic(
            &run_dir.join(RUN_CONFIG),
            format!("{header}{}", toml::to_string(&self.config)?).as_bytes(),
        )?;
        fault::point("run:configured");
        Ok(run_dir)
    }

    /// The step, optimizer moments, sampler and run state of the checkpoint resumed from
    /// (a fresh run's state at step 0 otherwise).
    fn restore(&self, steps: &mut Steps, total_steps: u64) -> Result<RunState> {
        let Some(c) = &self.resumed else {
            return Ok(RunState {
                step: 0,
                total_steps,
                sampler: steps.batches.sampler.state.clone(),
                group_steps: Vec::new(),
                best: None,
                tokens: 0,
                elapsed_s: 0.0,
                weighting: None,
            });
        };
        let file = |name: &str| c.dir.join(name).display().to_string();
        steps
            .trainer
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
        steps.trainer.step = c.state.step;
        if let Some(state) = &c.state.weighting {
            steps.trainer.weighter.restore(state.clone()).map_err(|e| {
                anyhow!(
                    "{}: {e}; resume with the configuration that wrote it, or start a new \
                         run",
                    file(checkpoint::STATE_FILE)
                )
            })?;
        }
        steps
            .batches
            .sampler
            .restore(c.state.sampler.clone())
            .map_err(|e| {
                anyhow!(
                    "{}: {e}; the checkpoint is damaged or belongs to another configuration: \
                     resume from an intact copy of the run, or start a new run",
                    file(checkpoint::STATE_FILE)
                )
            })?;
        Ok(c.state.clone())
    }
}

/// The model `[train] init_from` names: a model directory (or `taskgate export` directory),
/// or a run directory's best checkpoint (else its last).
pub fn init_source(dir: &Path) -> Result<(PathBuf, ModelDir)> {
    let what = format!("[train] init_from (--init-from) {}", dir.display());
    if !dir.is_dir() {
        bail!("{what} is not a directory; give a run or model directory");
    }
    let model_dir = if dir.join(crate::model::dir::CONFIG_FILE).exists() {
        dir.to_path_buf()
    } else if dir.join(RUN_CONFIG).exists() {
        let found = checkpoint::model_dir_of(dir);
        if found == dir {
            bail!(
                "{what} is a run directory without a complete checkpoint yet; resume that run \
                 first (taskgate train --resume), or give another directory"
            );
        }
        found
    } else {
        bail!(
            "{what} is neither a run directory (no {RUN_CONFIG}) nor a model directory (no {})",
            crate::model::dir::CONFIG_FILE
        );
    };
    let model = ModelDir::load(&model_dir).with_context(|| format!("{what}: cannot read it"))?;
    Ok((model_dir, model))
}

/// Time and tokens of this process's share of a run: the log's elapsed time, tokens/s and
/// the ETA.
struct Clock {
    started: Instant,
    /// Training time and tokens before this process (a resumed run's).
    elapsed_before: f64,
    tokens_before: u64,
    /// The step this process started at.
    step_before: u64,
    /// Wall-clock time of training steps alone (evaluations and checkpoints apart), for the
    /// ETA and tokens/s.
    eta: Eta,
    /// When the steps not yet timed began, and the step before them.
    mark: (Instant, u64),
}

impl Clock {
    fn start(state: &RunState) -> Self {
        let started = Instant::now();
        Self {
            started,
            elapsed_before: state.elapsed_s,
            tokens_before: state.tokens,
            step_before: state.step,
            eta: Eta::default(),
            mark: (started, state.step),
        }
    }

    /// Training time of the whole run so far, evaluations included.
    fn elapsed(&self) -> f64 {
        self.elapsed_before + self.started.elapsed().as_secs_f64()
    }

    /// Tokens per second of this process's training steps (evaluations apart), `tokens`
    /// being the run's count so far.
    fn tokens_per_s(&self, tokens: u64) -> f64 {
        (tokens - self.tokens_before) as f64 / self.training_secs()
    }

    /// Seconds of this process's training steps (evaluations apart).
    fn training_secs(&self) -> f64 {
        (self.started.elapsed().as_secs_f64() - self.eta.eval_secs()).max(1e-9)
    }
}

/// A run in progress: what its step loop, evaluations and checkpoints share.
struct Training {
    out: PathBuf,
    train: TrainConfig,
    tasks: Vec<TaskSpec>,
    /// Each task's data files, written into every checkpoint's `taskgate.toml`.
    sources: Vec<DataSource>,
    tokenizer_json: Vec<u8>,
    tokenizer: TextTokenizer,
    dev_data: Vec<Option<EvalSet>>,
    gpu: Gpu,
    steps: Steps,
    state: RunState,
    /// Rank 0's (the one writer's): the run directory and its log.
    run_dir: Option<RunDir>,
    log: Option<RunLog>,
    comm: Comm,
    /// Steps whose parameters were compared across the ranks (`None`: not checking).
    replicas_checked: Option<u64>,
    bar: indicatif::ProgressBar,
    clock: Clock,
    /// The metrics of the latest evaluation.
    last_dev: Vec<(String, Metrics)>,
    quiet: bool,
    stop_rule: Option<StopRule>,
    stopped_at: Option<u64>,
}

impl Training {
    /// Everything before the first step: the configuration (fresh or resumed), the adapter,
    /// the model, every data file read and checked (before anything is written), the run
    /// directory, the trainer and its restored state, the log; then the header line.
    fn set_up(request: &AdapterRequest, options: &RunOptions, comm: Comm) -> Result<Self> {
        let out = &options.out;
        let (leader, ranks) = (comm.rank() == 0, comm.size());
        let quiet = options.quiet || !leader;
        let (mut start, check_replicas) = if ranks == 1 {
            (Start::new(options)?, false)
        } else {
            let start = leader.then(|| Start::new(options)).transpose()?;
            Start::shared(start, &comm)?
        };
        let train = start.config.train.clone().unwrap_or_default();
        if ranks > 1 && !train.weighting.weights_before_step() {
            bail!(
                "{}: [train] weighting = \"{}\" reads the losses or the tasks' gradients within \
                 a step, which training on {ranks} ranks does not support yet: use static, \
                 equal, rlw, dwa or uncertainty, or train in one process",
                start.config_path.display(),
                train.weighting.name()
            );
        }
        // The adapter first: a fresh model's sizes are checked against its limits before any
        // parameter is allocated. The ranks of a machine take its GPUs in turn.
        let mut request = request.clone();
        if ranks > 1 && request.local_rank.is_none() {
            request.local_rank = Some(comm.local_rank());
        }
        let gpu = pollster::block_on(Gpu::new(&request))?;
        let (spec, params, tokenizer_json) = start.model(&gpu, quiet)?;
        // `freeze` and `layer_lr_decay` checked against the model's parameters before
        // anything is written.
        let plan = param_plan(&train, &spec)
            .map_err(|e| anyhow!("{}: {e}", start.config_path.display()))?;
        if !quiet && (plan.any_frozen() || train.layer_lr_decay != 1.0) {
            eprintln!(
                "{}",
                plan.describe(&spec.param_specs(), train.layer_lr_decay)
            );
        }
        let tokenizer = TextTokenizer::from_bytes(&tokenizer_json, spec.encoder.max_length)?;

        // Every data file is read and checked before anything is written.
        let sources: Vec<DataSource> = start.config.tasks.iter().map(TaskConfig::source).collect();
        let names = |names: Vec<&str>| names.join(", ");
        let (ours, model) = (
            names(start.config.tasks.iter().map(|t| t.name.as_str()).collect()),
            names(spec.tasks.iter().map(|t| t.name.as_str()).collect()),
        );
        if ours != model {
            bail!(
                "{}: its tasks ({ours}) are not the checkpoint's ({model}); restore the file \
                 the run wrote",
                start.config_path.display()
            );
        }
        let train_data = load_all(&spec.tasks, &sources, Split::Train, &tokenizer)?;
        let dev_data = load_eval_sets(&spec.tasks, &sources, Split::Dev, &tokenizer)?;
        let pools: Vec<Vec<Example>> = train_data
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect();
        if train.weighting.combines_tasks()
            && let Some((task, _)) = spec.tasks.iter().zip(&pools).find(|(_, p)| p.is_empty())
        {
            bail!(
                "{}: [train] weighting = \"{}\" combines every task in each step, but task \
                 '{}' has no training examples: give it a train file, or use weighting = \
                 \"static\"",
                start.config_path.display(),
                train.weighting.name(),
                task.name
            );
        }
        let batches = Batches::new(&train, pools, tokenizer.pad_id());
        let total_steps = start.total_steps(&train, &batches.sampler);

        let run_dir = leader.then(|| start.run_dir(out)).transpose()?;
        let model = MultiTaskModel::new(&gpu, spec.clone(), &params)?;
        let steps_per_epoch = batches.sampler.batches_per_epoch();
        let mut trainer =
            build_trainer(model, &train, total_steps, steps_per_epoch).map_err(|(e, _)| e)?;
        if ranks > 1 {
            broadcast_params(&trainer.model, &comm)?;
            trainer.comm = comm.clone();
        }
        let mut steps = Steps::new(trainer, batches);
        let state = start.restore(&mut steps, total_steps)?;
        let log = leader.then(|| RunLog::open(out, state.step)).transpose()?;

        // (the ETA is in the message: see `Eta`)
        let template = "{bar:30} step {pos}/{len}  {msg}";
        let bar = progress_bar(
            options.progress && leader,
            total_steps,
            state.step,
            template,
        );
        let adapter = &gpu.adapter_info().name;
        if !quiet {
            let mut line = header(&train, &spec.tasks, &steps.batches.sampler, &state, adapter);
            if ranks > 1 {
                line.push_str(&format!(
                    "; data-parallel on {} (global batch {}, about {} rows per rank)",
                    comm.describe(),
                    train.batch_size,
                    train.batch_size.div_ceil(ranks)
                ));
            }
            say(&bar, line);
        }
        Ok(Self {
            out: out.clone(),
            tasks: spec.tasks,
            sources,
            tokenizer_json,
            tokenizer,
            dev_data,
            steps,
            run_dir,
            log,
            bar,
            clock: Clock::start(&state),
            state,
            gpu,
            train,
            last_dev: Vec::new(),
            quiet,
            replicas_checked: check_replicas.then_some(0),
            comm,
            stop_rule: options.stop_rule.clone(),
            stopped_at: None,
        })
    }

    /// The step loop: a step at a time until the last, logging, evaluating and saving
    /// checkpoints as `[train]` says.
    fn train(&mut self) -> Result<()> {
        let total = self.state.total_steps;
        while self.state.step < total {
            let taken = self.gpu.block_on(self.steps.step())??;
            self.state.tokens += taken.tokens;
            self.state.step += 1;
            let step = self.state.step;
            if self.replicas_checked.is_some() {
                self.check_replicas(step)?;
            }
            self.bar.set_position(step);

            let eval_every = self.train.eval_every;
            let eval_now = step == total || (eval_every > 0 && step.is_multiple_of(eval_every));
            // A checkpoint step always logs, so that nothing pending is lost with the process
            // and a resumed run logs exactly what the uninterrupted one does.
            if step.is_multiple_of(self.train.log_every) || eval_now {
                self.log_progress(step)?;
            }
            if eval_now {
                let score = self.evaluate_and_save(step)?;
                // (the rule sees every evaluation, the last one included)
                if let Some(rule) = &self.stop_rule
                    && rule(step, score, &self.last_dev)
                    && step < total
                {
                    self.stopped_at = Some(step);
                    fault::point("run:step");
                    break;
                }
            }
            fault::point("run:step");
        }
        Ok(())
    }

    /// Compares a hash of this rank's parameters with rank 0's ([`CHECK_REPLICAS_ENV`]).
    fn check_replicas(&mut self, step: u64) -> Result<()> {
        let params = self.steps.trainer.model.params();
        let gpu = params.gpu();
        let arenas: Vec<&crate::gpu::Tensor> = params.arenas.iter().collect();
        let mut hasher = crc32fast::Hasher::new();
        for bytes in gpu.block_on(gpu.read_bytes(&arenas))?? {
            hasher.update(&bytes);
        }
        let mine = hasher.finalize().to_le_bytes().to_vec();
        let mut rank0 = mine.clone();
        self.comm.broadcast_bytes(0, &mut rank0)?;
        if rank0 != mine {
            bail!(
                "rank {}: after step {step} its parameters differ from rank 0's ({CHECK_REPLICAS_ENV}); \
                 the ranks' adapters or drivers compute differently: report it with `taskgate \
                 info` from each machine",
                self.comm.rank()
            );
        }
        self.replicas_checked = self.replicas_checked.map(|n| n + 1);
        Ok(())
    }

    /// Reads the steps since the last log back (waiting for the GPU), then logs their mean
    /// loss per task, the learning rate, tokens/s and the ETA.
    fn log_progress(&mut self, step: u64) -> Result<()> {
        let total = self.state.total_steps;
        let advice = format!("lower [train] lr (now {}) or raise clip", self.train.lr);
        let read = self.gpu.block_on(self.steps.read(&advice))??;
        let Some(log) = self.log.as_mut() else {
            return Ok(()); // (another rank than 0: the losses are checked, rank 0 logs)
        };
        let mut sums = vec![(0.0f64, 0usize); self.tasks.len()];
        let mut weight_sums = vec![0.0f64; self.tasks.len()];
        let mut cosine_sums: Vec<f64> = Vec::new();
        let mut lr = 0.0;
        for StepRead { tasks, stats } in &read {
            lr = stats.lr;
            for (sum, w) in weight_sums.iter_mut().zip(&stats.weights) {
                *sum += *w as f64;
            }
            if let Some(cosines) = &stats.cosines {
                cosine_sums.resize(cosines.len(), 0.0);
                for (sum, c) in cosine_sums.iter_mut().zip(cosines) {
                    *sum += *c as f64;
                }
            }
            for &task in tasks {
                if let Some(Some(loss)) = stats.task_losses.get(task) {
                    sums[task].0 += *loss as f64;
                    sums[task].1 += 1;
                }
            }
        }
        // (the readback above waited for the GPU: the steps so far are done)
        let clock = &mut self.clock;
        clock
            .eta
            .add_steps(step - clock.mark.1, clock.mark.0.elapsed().as_secs_f64());
        clock.mark = (Instant::now(), step);
        let elapsed = clock.elapsed();
        let tokens_per_s = clock.tokens_per_s(self.state.tokens);
        let losses: serde_json::Map<String, Value> = sums
            .iter()
            .zip(&self.tasks)
            .filter(|((_, n), _)| *n > 0)
            .map(|((s, n), task)| (task.name.clone(), json!(s / *n as f64)))
            .collect();
        let left = clock
            .eta
            .remaining(total - step, evals_left(step, total, self.train.eval_every))
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
        if self.bar.is_hidden()
            && !self.quiet
            && (step.is_multiple_of(5 * self.train.log_every) || step == total)
        {
            // No terminal (a log file, CI): a plain line now and then instead of the bar.
            eprintln!("step {step}/{total} {status}");
        }
        self.bar.set_message(status);
        let steps_read = read.len().max(1) as f64;
        let weights: serde_json::Map<String, Value> = self
            .tasks
            .iter()
            .zip(&weight_sums)
            .map(|(task, s)| (task.name.clone(), json!(s / steps_read)))
            .collect();
        let mut record = json!({"kind": "train", "step": step, "lr": lr, "loss": losses,
            "weights": weights, "tokens_per_s": tokens_per_s, "elapsed_s": elapsed});
        if !cosine_sums.is_empty() {
            let mut pairs = serde_json::Map::new();
            let mut sums = cosine_sums.iter();
            for i in 0..self.tasks.len() {
                for j in i + 1..self.tasks.len() {
                    let name = format!("{}~{}", self.tasks[i].name, self.tasks[j].name);
                    pairs.insert(name, json!(sums.next().unwrap_or(&0.0) / steps_read));
                }
            }
            record["cosines"] = Value::Object(pairs);
        }
        log.push(record)
    }

    /// At an evaluation step: the dev sets evaluated, the best checkpoint replaced when the
    /// score improved, the last checkpoint and the chart written.
    fn evaluate_and_save(&mut self, step: u64) -> Result<Option<f64>> {
        let eval_started = Instant::now();
        // What the checkpoints record, as of the end of this step's training.
        self.state.elapsed_s = self.clock.elapsed();
        self.state.sampler = self.steps.batches.sampler.state.clone();
        self.state.group_steps = self.steps.trainer.optimizer.group_steps().to_vec();
        self.state.weighting = Some(self.steps.trainer.weighter.state.clone())
            .filter(|s| *s != WeightingState::Stateless);
        let score = self.evaluate(step)?;
        let improved = self.track_best(step, score);
        if self.log.is_some() {
            self.save_checkpoints(improved)?;
            self.write_chart()?;
        }
        if self.comm.size() > 1 {
            // The other ranks wait, untimed, while rank 0 writes the checkpoints.
            self.comm.broadcast_untimed(0, &mut Vec::new())?;
        }
        self.clock
            .eta
            .add_eval(eval_started.elapsed().as_secs_f64());
        self.clock.mark = (Instant::now(), step);
        Ok(score)
    }

    /// Evaluates every task that has a dev set, prints and logs the metrics; returns the
    /// score, the mean of the tasks' primary metrics (`None` without dev sets).
    fn evaluate(&mut self, step: u64) -> Result<Option<f64>> {
        let total = self.state.total_steps;
        let mut metrics = serde_json::Map::new();
        self.last_dev.clear();
        let mut scores = Vec::new();
        for (i, task) in self.tasks.iter().enumerate() {
            if let Some(dev) = &self.dev_data[i] {
                let m = evaluate_task_on(
                    &self.steps.trainer.model,
                    i,
                    dev,
                    &self.tokenizer,
                    &*self.comm,
                )?;
                if let Some(v) = m.get(task.kind.primary_metric()) {
                    scores.push(v);
                }
                metrics.insert(task.name.clone(), serde_json::to_value(&m.0)?);
                self.last_dev.push((task.name.clone(), m));
            }
        }
        let score = (!scores.is_empty()).then(|| scores.iter().sum::<f64>() / scores.len() as f64);
        if !metrics.is_empty()
            && let Some(log) = self.log.as_mut()
        {
            if !self.quiet {
                say(
                    &self.bar,
                    format!("step {step}/{total} dev: {}", describe(&self.last_dev)),
                );
            }
            log.push(json!({"kind": "eval", "step": step, "split": "dev", "metrics": metrics, "score": score}))?;
        }
        Ok(score)
    }

    /// Records a new best when `score` beats the best so far (without dev sets: the last
    /// step is the best); true when it did.
    fn track_best(&mut self, step: u64, score: Option<f64>) -> bool {
        let improved = match (score, self.state.best) {
            (Some(s), Some(b)) => s > b.score,
            (Some(_), None) => true,
            (None, _) => step == self.state.total_steps,
        };
        if improved {
            self.state.best = Some(Best {
                step,
                score: score.unwrap_or(f64::NAN),
            });
        }
        improved
    }

    /// Saves the best checkpoint (when `improved`), then the last one, each after the log is
    /// on disk: a checkpoint never gets ahead of its log.
    fn save_checkpoints(&mut self, improved: bool) -> Result<()> {
        let (Some(log), Some(run_dir)) = (self.log.as_ref(), self.run_dir.as_mut()) else {
            return Ok(()); // (only rank 0 writes)
        };
        for name in improved.then_some(BEST).into_iter().chain([LAST]) {
            log.sync()?;
            checkpoint::save(
                &self.out,
                name,
                &self.steps.trainer,
                &self.tokenizer_json,
                &self.sources,
                &self.state,
            )?;
            run_dir.keep(); // a checkpoint exists: keep the directory from here on
        }
        Ok(())
    }

    /// The chart of the log so far.
    fn write_chart(&self) -> Result<()> {
        let Some(log) = &self.log else {
            return Ok(());
        };
        write_chart(&self.out.join(CHART_FILE), &log.series(&self.tasks))?;
        fault::point("run:chart");
        Ok(())
    }

    /// The progress bar cleared; the run's figures.
    fn finish(self) -> RunSummary {
        self.bar.finish_and_clear();
        RunSummary {
            steps: self.state.step,
            tokens_per_s: self.clock.tokens_per_s(self.state.tokens),
            dev: self.last_dev,
            best: self.state.best,
            stopped_at: self.stopped_at,
            ranks: self.comm.size(),
            reduce: self.steps.trainer.reduce_stats,
            step_s: self.clock.training_secs(),
            steps_here: self.state.step - self.clock.step_before,
            replicas_checked: self.replicas_checked,
        }
    }
}

/// True when [`CHECK_REPLICAS_ENV`] asks for the replica check.
fn check_replicas_requested() -> bool {
    std::env::var(CHECK_REPLICAS_ENV).is_ok_and(|v| v == "1")
}

/// Rank 0's parameters on every rank (read back, broadcast, written), so that the ranks
/// start from the same bits whatever each read or drew.
fn broadcast_params(model: &MultiTaskModel, comm: &Comm) -> Result<()> {
    let gpu = model.params().gpu();
    for arena in &model.params().arenas {
        let mut bytes = if comm.rank() == 0 {
            gpu.block_on(gpu.read_bytes(&[arena]))??.remove(0)
        } else {
            Vec::new()
        };
        comm.broadcast_bytes(0, &mut bytes)?;
        if comm.rank() != 0 {
            if bytes.len() != arena.bytes() as usize {
                bail!(
                    "rank {}: rank 0 sent {} bytes for a parameter buffer of {}: the ranks \
                     built different models (different files or versions?)",
                    comm.rank(),
                    bytes.len(),
                    arena.bytes()
                );
            }
            arena.write(&bytemuck::pod_collect_to_vec::<u8, f32>(&bytes))?;
        }
    }
    Ok(())
}

/// The line a run starts with: what it trains, where, and how it samples the tasks (or that
/// there is nothing left to train).
fn header(
    train: &TrainConfig,
    tasks: &[TaskSpec],
    sampler: &Sampler,
    state: &RunState,
    adapter: &str,
) -> String {
    let total_steps = state.total_steps;
    if state.step >= total_steps {
        return format!(
            "the run is complete (step {total_steps} of {total_steps}): nothing to train"
        );
    }
    let shares = || {
        tasks
            .iter()
            .zip(sampler.probabilities())
            .map(|(task, p)| format!("{} {p:.2}", task.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let how = match (train.mixing, train.sampler) {
        (Mixing::AllTasks, _) => format!(
            "every task in every step (mixing all_tasks, weighting {})",
            train.weighting.name()
        ),
        (_, SamplerKind::RoundRobin) => "sampler round_robin (each task in turn)".to_string(),
        (_, SamplerKind::Proportional) => format!("sampler proportional (p: {})", shares()),
        (_, SamplerKind::Temperature) => format!(
            "sampler temperature, T = {} (p: {})",
            train.temperature,
            shares()
        ),
    };
    format!(
        "training {} task(s) on {adapter}: steps {}..{total_steps}, batch {}, {how}",
        tasks.len(),
        state.step + 1,
        train.batch_size,
    )
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
pub fn say(bar: &indicatif::ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

/// A bar of `total` items drawn with `template` on stderr (hidden unless `show`, and by
/// indicatif when stderr is not a terminal), at `start`.
pub fn progress_bar(
    show: bool,
    total: u64,
    start: u64,
    template: &'static str,
) -> indicatif::ProgressBar {
    let bar = if show {
        indicatif::ProgressBar::new(total)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(indicatif::ProgressStyle::with_template(template).expect("a valid template"));
    bar.set_position(start);
    bar
}
