//! `taskgate tune`: a study of trials, each a normal training run under `DIR/trials/NNN`
//! whose settings come from the `[tune.space]` of the config, chosen by grid, random or TPE
//! search ([`sampler`]) to maximise a dev objective.
//!
//! A study is deterministic: trial t's settings depend only on the study (space, method,
//! seed, jobs) and on the trials before `t - jobs + 1` (the ones certain to be done when it
//! starts), and each trial is a deterministic run. So `--resume` after any interruption keeps
//! the finished trials (`study.jsonl`), starts the unfinished ones again from step 0, and
//! ends with the records an uninterrupted study would have written.
//!
//! The study directory: `study.toml` (the resolved config the trials start from, `[tune]`
//! included), `study.jsonl`, `study.md`, `best.toml`, `study.svg`, `trials/NNN.toml` (each
//! trial's config) and `trials/NNN/` (its run directory).

pub mod chart;
pub mod record;
pub mod sampler;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};

use crate::config::ModelConfig;
use crate::config::tune::{
    Choice, EarlyStop, Objective, Param, SearchMethod, TuneConfig, lower_is_better, quoted_paths,
    with_settings,
};
use crate::fault;
use crate::files::{DirLock, write_atomic};
use crate::gpu::AdapterRequest;
use crate::metrics::{Metrics, TaskEval};
use crate::tasks::TaskSpec;
use crate::train::run::{
    RunOptions, StopRule, progress_bar, resolve_fresh, run as run_training, say,
};
use record::{Status, TrialRecord};
use sampler::Observed;

pub const STUDY_CONFIG: &str = "study.toml";
pub const STUDY_LOG: &str = "study.jsonl";
pub const STUDY_TABLE: &str = "study.md";
pub const BEST_CONFIG: &str = "best.toml";
pub const STUDY_CHART: &str = "study.svg";
pub const TRIALS: &str = "trials";

/// What to run.
#[derive(Clone, Debug, Default)]
pub struct TuneOptions {
    /// The config file of a new study (`None` when resuming).
    pub config: Option<PathBuf>,
    pub out: PathBuf,
    pub resume: bool,
    /// Override `[tune]` (new studies only).
    pub trials: Option<usize>,
    pub method: Option<SearchMethod>,
    pub steps: Option<u64>,
    pub jobs: Option<usize>,
    /// Show the progress bar (it hides itself when stderr is not a terminal).
    pub progress: bool,
}

/// A finished study.
pub struct StudySummary {
    pub records: Vec<TrialRecord>,
    /// The results table (also `study.md`).
    pub table: String,
}

/// A study as resolved: the configuration trials start from, the space and the budget.
struct Study {
    dir: PathBuf,
    /// The resolved config (absolute paths, inferred labels), `[tune]` included.
    base: ModelConfig,
    tune: TuneConfig,
    params: Vec<Param>,
    objective: Objective,
    trials: usize,
    startup: usize,
    jobs: usize,
    /// (task, primary metric) of each task with dev data, for the table.
    primary: Vec<(String, String)>,
    /// The base's tasks, resolved.
    tasks: Vec<TaskSpec>,
}

/// Runs (or resumes) the study `options` describes.
pub fn tune(request: &AdapterRequest, options: &TuneOptions) -> Result<StudySummary> {
    let (study, _lock) = if options.resume {
        if options.config.is_some()
            || options.trials.is_some()
            || options.method.is_some()
            || options.steps.is_some()
            || options.jobs.is_some()
        {
            bail!(
                "--resume continues a study as it was set up; drop CONFIG, --trials, --method, \
                 --steps and --jobs"
            );
        }
        Study::resume(&options.out)?
    } else {
        Study::fresh(options)?
    };
    study.run(request, options.progress)
}

impl Study {
    fn fresh(options: &TuneOptions) -> Result<(Self, DirLock)> {
        let config_path = options
            .config
            .as_deref()
            .ok_or_else(|| anyhow!("give a CONFIG.toml and --out DIR, or --resume DIR"))?;
        let in_file = |e: anyhow::Error| anyhow!("{}: {e:#}", config_path.display());
        let mut base = resolve_fresh(config_path, None)?;
        let tune = base.tune.as_mut().ok_or_else(|| {
            in_file(anyhow!(
                "no [tune] section: add one with a [tune.space] of the settings to search"
            ))
        })?;
        if let Some(t) = options.trials {
            tune.trials = Some(t);
        }
        if let Some(m) = options.method {
            tune.method = m;
        }
        if let Some(s) = options.steps {
            tune.steps = Some(s);
        }
        if let Some(j) = options.jobs {
            tune.jobs = Some(j);
        }
        let study = Self::new(options.out.clone(), base).map_err(in_file)?;
        study.probe().map_err(in_file)?;
        let dir = &options.out;
        if dir.exists() {
            let empty = std::fs::read_dir(dir)
                .with_context(|| format!("cannot read {}", dir.display()))?
                .next()
                .is_none();
            if !empty {
                bail!(
                    "{} exists and is not empty: choose a new --out, or continue the study with \
                     `taskgate tune --resume {}`",
                    dir.display(),
                    dir.display()
                );
            }
        }
        std::fs::create_dir_all(dir.join(TRIALS))
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let lock = DirLock::acquire(dir, "start a study")?;
        let header = "# The study's configuration: the resolved config every trial starts from \
                      (absolute paths, inferred labels) and its [tune] section.\n\n";
        write_atomic(
            &dir.join(STUDY_CONFIG),
            format!("{header}{}", toml::to_string(&study.base)?).as_bytes(),
        )?;
        fault::point("tune:configured");
        Ok((study, lock))
    }

    fn resume(dir: &Path) -> Result<(Self, DirLock)> {
        let path = dir.join(STUDY_CONFIG);
        if !path.is_file() {
            bail!(
                "{} is not a study directory (no {STUDY_CONFIG}); start one with `taskgate tune \
                 CONFIG.toml --out {}`",
                dir.display(),
                dir.display()
            );
        }
        let lock = DirLock::acquire(dir, "resume the study")?;
        let base = ModelConfig::load(&path)?;
        let study =
            Self::new(dir.to_path_buf(), base).map_err(|e| anyhow!("{}: {e:#}", path.display()))?;
        Ok((study, lock))
    }

    fn new(dir: PathBuf, base: ModelConfig) -> Result<Self> {
        let tune = base
            .tune
            .clone()
            .ok_or_else(|| anyhow!("no [tune] section"))?;
        tune.validate()?;
        let params = tune.params()?;
        let objective = Objective::parse(&tune.objective)?;
        let grid = sampler::grid_size(&params);
        let trials = match (tune.method, tune.trials) {
            (SearchMethod::Grid, Some(t)) => t.min(grid),
            (SearchMethod::Grid, None) => grid,
            (_, Some(t)) => t,
            (_, None) => 16,
        };
        let startup = tune.startup.unwrap_or((trials / 3).clamp(2, 10));
        let jobs = tune.jobs.unwrap_or(1);
        if jobs == 0 {
            bail!("[tune] jobs must be at least 1");
        }
        let tasks = TaskSpec::all_from(&base)?;
        let primary = base
            .tasks
            .iter()
            .zip(&tasks)
            .filter(|(t, _)| t.dev.is_some())
            .map(|(t, spec)| (t.name.clone(), spec.kind.primary_metric().to_string()))
            .collect();
        Ok(Self {
            dir,
            base,
            tune,
            params,
            objective,
            trials,
            startup,
            jobs,
            primary,
            tasks,
        })
    }

    /// Checks every searched value alone against the configuration (each list value, each
    /// range's ends) and the objective against the tasks, before any trial runs.
    fn probe(&self) -> Result<()> {
        for param in &self.params {
            let values = match &param.domain {
                crate::config::tune::Domain::Values(v) => v.clone(),
                range => vec![range.range_value(0.0), range.range_value(1.0)],
            };
            for value in values {
                // Each value alone: the other settings keep the base's values.
                self.trial_config(&[(param.path.clone(), value)])?;
            }
        }
        match &self.objective {
            Objective::MeanDev => {
                if self.primary.is_empty() {
                    bail!("[tune] objective = \"mean_dev\" needs a task with a `dev` file");
                }
            }
            Objective::Metric { task, metric } => {
                let Some(i) = self.base.tasks.iter().position(|t| &t.name == task) else {
                    let names: Vec<&str> =
                        self.base.tasks.iter().map(|t| t.name.as_str()).collect();
                    bail!(
                        "[tune] objective: no task `{task}` (tasks: {})",
                        names.join(", ")
                    );
                };
                if self.base.tasks[i].dev.is_none() {
                    bail!("[tune] objective: task `{task}` has no `dev` file to measure it on");
                }
                let spec = &self.tasks[i];
                let labels = spec.labels.clone().unwrap_or_default();
                let known = spec
                    .kind
                    .metrics(&TaskEval::default(), &labels, labels.len());
                if known.get(metric).is_none() {
                    let names: Vec<&str> = known.0.keys().map(String::as_str).collect();
                    bail!(
                        "[tune] objective: task `{task}` reports no `{metric}` (it reports {})",
                        names.join(", ")
                    );
                }
            }
        }
        Ok(())
    }

    /// The config of a trial with `settings` (every searched path, or the one value being
    /// probed): the base with the study's steps and the settings written in (`with_settings`
    /// drops `[tune]`), checked as a run checks its config; errors name the settings' paths.
    fn trial_config(&self, settings: &[(String, Choice)]) -> Result<ModelConfig> {
        let mut base = self.base.clone();
        if let Some(steps) = self.tune.steps {
            let train = base.train.get_or_insert_with(Default::default);
            train.steps = Some(steps);
            train.epochs = None;
        }
        let config = with_settings(&base, settings)?;
        let named = |e: anyhow::Error| anyhow!("[tune.space] {}: {e:#}", quoted_paths(settings));
        let tasks = TaskSpec::all_from(&config).map_err(named)?;
        if let Some(train) = &config.train {
            train.validate_for_tasks(tasks.len()).map_err(named)?;
        }
        Ok(config)
    }

    /// The trials trial `t` may learn from: those numbered at most `t - jobs`.
    fn visible<'a>(
        &self,
        t: usize,
        done: &'a BTreeMap<usize, TrialRecord>,
    ) -> Vec<&'a TrialRecord> {
        done.values().filter(|r| r.trial + self.jobs <= t).collect()
    }

    fn run(&self, request: &AdapterRequest, progress: bool) -> Result<StudySummary> {
        let log_path = self.dir.join(STUDY_LOG);
        let mut done: BTreeMap<usize, TrialRecord> = record::read(&log_path)?
            .into_iter()
            .map(|r| (r.trial, r))
            .collect();
        let template = "trials {pos}/{len} {bar:30} {msg} | ETA {eta}";
        let bar = progress_bar(progress, self.trials as u64, done.len() as u64, template);
        bar.reset_eta(); // (the trials already done took no time in this process)
        bar.set_message(best_message(&done));
        let (sender, receiver) = mpsc::channel::<TrialRecord>();
        let mut running = 0usize;
        let mut next = 0usize;
        std::thread::scope(|scope| -> Result<()> {
            loop {
                // Start every trial whose history is complete, in order, up to `jobs` at once.
                while running < self.jobs && next < self.trials {
                    if done.contains_key(&next) {
                        next += 1;
                        continue;
                    }
                    let ready =
                        (0..(next + 1).saturating_sub(self.jobs)).all(|u| done.contains_key(&u));
                    if !ready {
                        break;
                    }
                    let trial = next;
                    let visible = self.visible(trial, &done);
                    let history: Vec<Observed> = visible
                        .iter()
                        .filter_map(|r| {
                            Some(Observed {
                                values: self.values_of(r)?,
                                objective: r.objective.filter(|o| o.is_finite())?,
                            })
                        })
                        .collect();
                    let values = sampler::draw(
                        &self.params,
                        self.tune.method,
                        self.tune.seed,
                        self.startup,
                        trial,
                        &history,
                    )?;
                    let finished: Vec<TrialRecord> = visible
                        .iter()
                        .filter(|r| r.status == Status::Finished)
                        .map(|r| (*r).clone())
                        .collect();
                    let sender = sender.clone();
                    scope.spawn(move || {
                        let record = self.run_trial(request, trial, values, finished);
                        let _ = sender.send(record);
                    });
                    running += 1;
                    next += 1;
                }
                if running == 0 {
                    break;
                }
                let record = receiver
                    .recv()
                    .map_err(|_| anyhow!("a trial's thread ended without a result"))?;
                running -= 1;
                say(&bar, describe_trial(&record, &self.params));
                done.insert(record.trial, record);
                let records: Vec<TrialRecord> = done.values().cloned().collect();
                record::write(&log_path, &records)?;
                fault::point("tune:trial");
                bar.set_position(done.len() as u64);
                bar.set_message(best_message(&done));
            }
            Ok(())
        })?;
        bar.finish_and_clear();
        self.write_results(done.into_values().collect())
    }

    /// A record's settings in parameter order (none if the space no longer matches it).
    fn values_of(&self, record: &TrialRecord) -> Option<Vec<Choice>> {
        self.params
            .iter()
            .map(|p| record.params.get(&p.path).cloned())
            .collect()
    }

    /// Runs trial `trial` from step 0 (an unfinished run of it is removed first).
    fn run_trial(
        &self,
        request: &AdapterRequest,
        trial: usize,
        values: Vec<Choice>,
        finished: Vec<TrialRecord>,
    ) -> TrialRecord {
        let started = Instant::now();
        let settings: Vec<(String, Choice)> = self
            .params
            .iter()
            .map(|p| p.path.clone())
            .zip(values)
            .collect();
        let params: BTreeMap<String, Choice> = settings.iter().cloned().collect();
        let evals: Arc<Mutex<Vec<(u64, f64)>>> = Arc::default();
        let outcome = self.train_trial(request, trial, &settings, finished, evals.clone());
        let evals = evals.lock().map(|e| e.clone()).unwrap_or_default();
        let time_s = started.elapsed().as_secs_f64();
        match outcome {
            Ok((steps, stopped, dev)) => TrialRecord {
                trial,
                params,
                status: if stopped {
                    Status::Stopped
                } else {
                    Status::Finished
                },
                objective: evals.last().map(|e| e.1),
                steps,
                evals,
                dev,
                time_s,
                error: None,
            },
            Err(e) => TrialRecord {
                trial,
                params,
                status: Status::Failed,
                objective: None,
                steps: 0,
                evals,
                dev: BTreeMap::new(),
                time_s,
                error: Some(crate::error::one_line(&e, false)),
            },
        }
    }

    #[allow(clippy::type_complexity)]
    fn train_trial(
        &self,
        request: &AdapterRequest,
        trial: usize,
        settings: &[(String, Choice)],
        finished: Vec<TrialRecord>,
        evals: Arc<Mutex<Vec<(u64, f64)>>>,
    ) -> Result<(u64, bool, BTreeMap<String, BTreeMap<String, f64>>)> {
        let trials = self.dir.join(TRIALS);
        let name = format!("{trial:03}");
        let config_path = trials.join(format!("{name}.toml"));
        let out = trials.join(&name);
        let config = self.trial_config(settings)?;
        let lines: Vec<String> = settings
            .iter()
            .map(|(path, v)| format!("# {path} = {v}"))
            .collect();
        let header = format!(
            "# Trial {name} of the study in {}:\n{}\n\n",
            self.dir.display(),
            lines.join("\n")
        );
        write_atomic(
            &config_path,
            format!("{header}{}", toml::to_string(&config)?).as_bytes(),
        )?;
        if out.exists() {
            // An interrupted study's unfinished trial: it starts again from step 0.
            std::fs::remove_dir_all(&out)
                .with_context(|| format!("cannot remove the unfinished trial {}", out.display()))?;
        }
        let rule = self.stop_rule(finished, evals);
        let summary = run_training(
            request,
            &RunOptions {
                config: Some(config_path),
                out,
                quiet: true,
                stop_rule: Some(rule),
                ..Default::default()
            },
        )?;
        let dev = summary
            .dev
            .iter()
            .map(|(task, m)| (task.clone(), m.0.clone()))
            .collect();
        Ok((summary.steps, summary.stopped_at.is_some(), dev))
    }

    /// Records each evaluation's objective into `evals` and, with the median rule, says stop
    /// when the trial's best so far is below the median of the `finished` trials at the step.
    fn stop_rule(
        &self,
        finished: Vec<TrialRecord>,
        evals: Arc<Mutex<Vec<(u64, f64)>>>,
    ) -> StopRule {
        let objective = self.objective.clone();
        let early = self.tune.early_stop;
        let needed = self.tune.early_stop_trials;
        Arc::new(move |step, score, dev| {
            let Some(value) = objective_value(&objective, score, dev) else {
                return false;
            };
            let Ok(mut evals) = evals.lock() else {
                return false;
            };
            evals.push((step, value));
            if early != EarlyStop::Median {
                return false;
            }
            let best = evals.iter().map(|e| e.1).fold(f64::NEG_INFINITY, f64::max);
            let mut at_step: Vec<f64> = finished
                .iter()
                .filter_map(|r| r.evals.iter().find(|e| e.0 == step).map(|e| e.1))
                .collect();
            if at_step.len() < needed {
                return false;
            }
            at_step.sort_by(f64::total_cmp);
            let n = at_step.len();
            let median = if n % 2 == 1 {
                at_step[n / 2]
            } else {
                (at_step[n / 2 - 1] + at_step[n / 2]) / 2.0
            };
            best < median
        })
    }

    /// `study.md`, `best.toml` and `study.svg` from the records.
    fn write_results(&self, records: Vec<TrialRecord>) -> Result<StudySummary> {
        let paths: Vec<String> = self.params.iter().map(|p| p.path.clone()).collect();
        let table = record::table(&records, &paths, &self.tune.objective, &self.primary);
        let best = record::best(&records);
        let heading = format!(
            "# Study {}\n\n{} trials of {} ({} search, seed {}), objective `{}` (maximised{}).\n\n",
            self.dir.display(),
            records.len(),
            self.trials,
            self.tune.method.name(),
            self.tune.seed,
            self.tune.objective,
            match &self.objective {
                Objective::Metric { metric, .. } if lower_is_better(metric) =>
                    ": the metric negated",
                _ => "",
            }
        );
        write_atomic(
            &self.dir.join(STUDY_TABLE),
            format!("{heading}{table}").as_bytes(),
        )?;
        if let Some(best) = best {
            let name = format!("{:03}", best.trial);
            let source = self.dir.join(TRIALS).join(format!("{name}.toml"));
            let text = std::fs::read_to_string(&source)
                .with_context(|| format!("cannot read {}", source.display()))?;
            let header = format!(
                "# The best trial of the study in {} (trial {name}, objective {:.4}): train it \
                 with `taskgate train best.toml --out RUN`.\n",
                self.dir.display(),
                best.objective.unwrap_or(f64::NAN)
            );
            write_atomic(
                &self.dir.join(BEST_CONFIG),
                format!("{header}{text}").as_bytes(),
            )?;
        }
        chart::write_study_chart(
            &self.dir.join(STUDY_CHART),
            &records,
            &self.params,
            &self.tune.objective,
        )?;
        Ok(StudySummary { records, table })
    }
}

/// The objective of one evaluation (maximised), or none when it was not measured.
fn objective_value(
    objective: &Objective,
    score: Option<f64>,
    dev: &[(String, Metrics)],
) -> Option<f64> {
    match objective {
        Objective::MeanDev => score,
        Objective::Metric { task, metric } => {
            let (_, m) = dev.iter().find(|(t, _)| t == task)?;
            let v = m.get(metric)?;
            Some(if lower_is_better(metric) { -v } else { v })
        }
    }
}

fn best_message(done: &BTreeMap<usize, TrialRecord>) -> String {
    let records: Vec<TrialRecord> = done.values().cloned().collect();
    match record::best(&records) {
        Some(b) => format!(
            "best {:.4} (trial {:03})",
            b.objective.unwrap_or(f64::NAN),
            b.trial
        ),
        None => String::new(),
    }
}

fn describe_trial(record: &TrialRecord, params: &[Param]) -> String {
    let settings: Vec<String> = params
        .iter()
        .filter_map(|p| Some(format!("{} {}", p.path, record.params.get(&p.path)?)))
        .collect();
    let result = match (record.status, record.objective, &record.error) {
        (Status::Failed, _, Some(e)) => format!("failed: {e}"),
        (Status::Stopped, Some(o), _) => format!("stopped at step {} ({o:.4})", record.steps),
        (_, Some(o), _) => format!("objective {o:.4}"),
        _ => "no objective".into(),
    };
    format!(
        "trial {:03}: {result} in {:.0}s ({})",
        record.trial,
        record.time_s,
        settings.join(", ")
    )
}
