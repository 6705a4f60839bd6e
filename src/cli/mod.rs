//! The `taskgate` command line.

mod bench;
mod dump;
mod eval;
mod export;
mod export_data;
mod info;
mod init;
mod predict;
mod train;
mod tune;

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};

use crate::data::splits::Split;
use crate::gpu::AdapterRequest;

/// `--method` of `taskgate tune`.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum SearchMethodArg {
    Grid,
    Random,
    Tpe,
}

#[derive(Parser, Debug)]
#[command(
    name = "taskgate",
    version,
    about = "Multi-task Transformer encoders on any GPU, with hand-written WGSL kernels"
)]
pub struct Cli {
    /// Backend to use: vulkan, metal, dx12 or gl (default: the best available).
    #[arg(long, global = true, env = "TASKGATE_BACKEND")]
    pub backend: Option<String>,
    /// Use the adapter whose name contains this text (case-insensitive).
    #[arg(long, global = true, env = "TASKGATE_ADAPTER")]
    pub adapter: Option<String>,
    /// On an error, also list its details (every mismatched tensor, ...).
    #[arg(long, short, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List every GPU adapter, the one taskgate picks, its limits and features.
    Info {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Create a model directory from a config file (fresh or pretrained encoder, fresh tasks).
    Init {
        /// The config file (see README.md).
        config: PathBuf,
        /// The model directory to write.
        #[arg(long)]
        out: PathBuf,
        /// Overwrite a model already in --out.
        #[arg(long)]
        force: bool,
        /// Take the encoder, and the tasks this config has unchanged, from this run or
        /// model directory (as `train --init-from`).
        #[arg(long, value_name = "DIR")]
        init_from: Option<PathBuf>,
    },
    /// Benchmarks: kernels, whole training steps, and a side-by-side comparison.
    Bench {
        #[command(subcommand)]
        what: bench::BenchCommand,
    },
    /// Train a model on the data its config names (see README.md): `CONFIG.toml --out DIR`
    /// starts a run, `--resume DIR` continues one exactly where it stopped.
    Train {
        /// The config file ([encoder], [[task]] with train/dev/test files, [train]).
        config: Option<PathBuf>,
        /// The run directory to create (checkpoints best/ and last/, log.jsonl, chart.svg).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Continue the run in this directory from its last checkpoint.
        #[arg(long, conflicts_with_all = ["config", "out"])]
        resume: Option<PathBuf>,
        /// Train only this task (a single-task baseline).
        #[arg(long)]
        only: Option<String>,
        /// Override [train] steps.
        #[arg(long)]
        steps: Option<u64>,
        /// Start from a trained model: a run directory (its best checkpoint) or a model
        /// directory; its encoder and the tasks this config has unchanged are taken, new
        /// tasks start fresh (sets [train] init_from).
        #[arg(long, value_name = "DIR")]
        init_from: Option<PathBuf>,
    },
    /// Search task weights and training settings ([tune] in the config, see README.md):
    /// `CONFIG.toml --out DIR` starts a study of trials, `--resume DIR` continues one.
    Tune {
        /// The config file, with a [tune] section and its [tune.space].
        config: Option<PathBuf>,
        /// The study directory to create (trials/, study.jsonl, study.md, best.toml).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Continue the study in this directory.
        #[arg(long, conflicts_with_all = ["config", "out"])]
        resume: Option<PathBuf>,
        /// Override [tune] trials.
        #[arg(long)]
        trials: Option<usize>,
        /// Override [tune] method.
        #[arg(long, value_enum)]
        method: Option<SearchMethodArg>,
        /// Override [tune] steps (per trial).
        #[arg(long)]
        steps: Option<u64>,
        /// Trials run at once (default 1).
        #[arg(long)]
        jobs: Option<usize>,
    },
    /// Per-task metrics of a trained model on its tasks' dev or test files.
    Eval {
        /// A run directory (its best checkpoint is used) or a model directory.
        dir: PathBuf,
        #[arg(long, value_enum, default_value = "dev")]
        split: EvalSplit,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Write the report to this file instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Evaluate even if the weights hold NaN or Inf values (refused by default).
        #[arg(long)]
        allow_non_finite: bool,
    },
    /// Every task's prediction for each line of a JSONL file ({"text": ..., "text_pair"?: ...}).
    Predict {
        /// A run directory (its best checkpoint is used) or a model directory.
        dir: PathBuf,
        #[arg(long)]
        input: PathBuf,
        /// Where to write the predictions (default: standard output).
        #[arg(long)]
        output: Option<PathBuf>,
        /// Add each task's mean gate value per token.
        #[arg(long)]
        gates: bool,
        /// Add each task's raw logits (sequence tasks: one row; token tasks: one row per token).
        #[arg(long)]
        logits: bool,
        /// Generation tasks: beam search with N beams, writing the N best texts with their
        /// scores (default: each task's `generate` settings, greedy unless set).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
        beam: Option<u32>,
        /// Predict even if the weights hold NaN or Inf values (refused by default).
        #[arg(long)]
        allow_non_finite: bool,
    },
    /// Write a config's task data (any format) as one JSONL file of
    /// {"text", "text_pair"?, "labels": {task: label}} lines (e.g. for the browser page).
    ExportData {
        /// The config file naming each task's data files.
        config: PathBuf,
        #[arg(long, value_enum, default_value_t = DataSplit::Train)]
        split: DataSplit,
        /// At most this many examples per task, evenly spaced through its file.
        #[arg(long, conflicts_with = "batches")]
        per_task: Option<usize>,
        /// Instead: the batches of the first N training steps of a fresh `train CONFIG`, in
        /// order and tokenized, one JSONL line per step (to train another framework on them).
        #[arg(long, value_name = "N", conflicts_with = "split")]
        batches: Option<u64>,
        /// Where to write (default: standard output).
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Write a trained model in another framework's form: `--format hf`, a Hugging Face BERT
    /// directory (transformers' AutoModel and AutoTokenizer load it; the task gates and heads
    /// beside it, so `train --init-from` reads it back).
    Export {
        /// A run directory (its best checkpoint is used) or a model directory.
        dir: PathBuf,
        #[arg(long, value_enum)]
        format: export::ExportFormat,
        /// The directory to write (new or empty).
        #[arg(long)]
        out: PathBuf,
        /// Export even if the weights hold NaN or Inf values (refused by default).
        #[arg(long)]
        allow_non_finite: bool,
    },
    /// Run one forward and backward (dropout off) on a batch and write every output,
    /// loss and gradient to a safetensors file, to compare with PyTorch.
    Dump {
        /// The model directory.
        #[arg(long)]
        model: PathBuf,
        /// JSONL batch: {"text": ..., "text_pair"?: ..., "labels": {"<task>": ...}} per line.
        #[arg(long)]
        batch: PathBuf,
        /// The safetensors file to write.
        #[arg(long)]
        out: PathBuf,
    },
}

/// The split `taskgate export-data` writes.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum DataSplit {
    Train,
    Dev,
    Test,
}

/// The split `taskgate eval` reads.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum EvalSplit {
    Dev,
    Test,
}

impl Cli {
    fn adapter_request(&self) -> AdapterRequest {
        AdapterRequest {
            backend: self.backend.clone(),
            name_contains: self.adapter.clone(),
            local_rank: None,
        }
    }
}

/// Loads the model of `dir` (a run directory or a model directory) found at `path` by
/// [`eval::model_dir`]; a run that is training may replace a checkpoint while it is read, so
/// a failure is retried once from a fresh look at `dir`. Returns where it was read.
fn load_run_model(
    dir: &std::path::Path,
    path: std::path::PathBuf,
    allow: bool,
) -> Result<(std::path::PathBuf, crate::model::ModelDir)> {
    match load_model(&path, allow) {
        Ok(model) => Ok((path, model)),
        Err(first) if dir.join(crate::train::run::RUN_CONFIG).exists() => {
            std::thread::sleep(std::time::Duration::from_millis(200));
            let again = eval::model_dir(dir);
            load_model(&again, allow)
                .map(|model| (again, model))
                .map_err(|_| first)
        }
        Err(first) => Err(first),
    }
}

/// Loads the model directory `path`; NaN or Inf weights are an error unless `allow`, and then
/// a warning naming the tensors.
fn load_model(path: &std::path::Path, allow: bool) -> Result<crate::model::ModelDir> {
    use crate::model::host::{NonFinite, describe_non_finite, non_finite};
    if !allow {
        return crate::model::ModelDir::load(path);
    }
    let model = crate::model::ModelDir::load_with(path, NonFinite::Allow)?;
    let found = non_finite(&model.params);
    if !found.is_empty() {
        eprintln!(
            "warning: {}: {} tensor(s) hold NaN or Inf values ({}); going on as \
             --allow-non-finite asks",
            path.join(crate::model::dir::WEIGHTS_FILE).display(),
            found.len(),
            crate::error::first_few(&describe_non_finite(&found), 2)
        );
    }
    Ok(model)
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    let request = cli.adapter_request();
    if let Some(n) = crate::dist::launcher_world_size().filter(|&n| n > 1)
        && !matches!(cli.command, Command::Train { .. })
    {
        bail!(
            "an MPI launcher started this command as one of {n} ranks; only `taskgate train` \
             runs across ranks (the others would repeat the work and collide on their \
             outputs): run it as one process"
        );
    }
    match cli.command {
        Command::Info { json } => info::run(&request, json),
        Command::Init {
            config,
            out,
            force,
            init_from,
        } => init::run(&config, &out, force, init_from.as_deref()),
        Command::Export {
            dir,
            format,
            out,
            allow_non_finite,
        } => export::run(&dir, format, &out, allow_non_finite),
        Command::Dump { model, batch, out } => dump::run(&request, &model, &batch, &out),
        Command::Bench { what } => bench::run(&request, what),
        Command::Train {
            config,
            out,
            resume,
            only,
            steps,
            init_from,
        } => train::run(&request, config, out, resume, only, steps, init_from),
        Command::Tune {
            config,
            out,
            resume,
            trials,
            method,
            steps,
            jobs,
        } => {
            use crate::config::tune::SearchMethod;
            let method = method.map(|m| match m {
                SearchMethodArg::Grid => SearchMethod::Grid,
                SearchMethodArg::Random => SearchMethod::Random,
                SearchMethodArg::Tpe => SearchMethod::Tpe,
            });
            tune::run(
                &request,
                crate::tune::TuneOptions {
                    resume: resume.is_some(),
                    out: match (out, resume) {
                        (Some(o), None) | (None, Some(o)) => o,
                        _ => anyhow::bail!(
                            "give `CONFIG.toml --out DIR` to start a study, or `--resume DIR` \
                             to continue one"
                        ),
                    },
                    config,
                    trials,
                    method,
                    steps,
                    jobs,
                    progress: true,
                },
            )
        }
        Command::Eval {
            dir,
            split,
            json,
            output,
            allow_non_finite,
        } => {
            let split = match split {
                EvalSplit::Dev => Split::Dev,
                EvalSplit::Test => Split::Test,
            };
            let report = eval::Report {
                json,
                output: output.as_deref(),
            };
            eval::run(&request, &dir, split, report, allow_non_finite)
        }
        Command::Predict {
            dir,
            input,
            output,
            gates,
            logits,
            beam,
            allow_non_finite,
        } => predict::run(
            &request,
            &dir,
            &input,
            output.as_deref(),
            crate::model::prediction_json::Extras {
                gates,
                logits,
                beam: beam.map(|b| b as usize),
            },
            allow_non_finite,
        ),
        Command::ExportData {
            config,
            batches: Some(steps),
            output,
            ..
        } => export_data::run_batches(&config, steps, output.as_deref()),
        Command::ExportData {
            config,
            split,
            per_task,
            output,
            batches: None,
        } => {
            let split = match split {
                DataSplit::Train => Split::Train,
                DataSplit::Dev => Split::Dev,
                DataSplit::Test => Split::Test,
            };
            export_data::run(&config, split, per_task, output.as_deref())
        }
    }
}
