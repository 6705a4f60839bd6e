//! An in-memory session, the browser page's engine: a model directory given as file contents,
//! predictions as JSON, fine-tuning on JSONL text one step at a time, and the trained weights
//! as `model.safetensors` bytes. Everything that reads the GPU is `async` and never blocks,
//! so the same code runs on WebGPU in the browser and (driven by [`Gpu::block_on`]) natively.

use std::path::Path;

use anyhow::{Result, anyhow, bail};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::config::train::Decay;
use crate::config::{SamplerKind, TrainConfig};
use crate::data::jsonl::parse_examples;
use crate::data::{Example, collate};
use crate::gpu::Gpu;
use crate::model::host::serialize_params;
use crate::model::infer::{InferOptions, infer_async};
use crate::model::prediction_json::{Extras, prediction_json};
use crate::model::{ModelDir, ModelSpec, MultiTaskModel};
use crate::tokenize::TextTokenizer;
use crate::train::steps::{Batches, StepRead, Steps, build_trainer};

/// The largest batch the page may ask for (larger ones would not fit a browser's GPU anyway).
pub const MAX_BATCH: usize = 4096;

/// Fine-tuning settings, as the page sends them (JSON; unknown keys are errors).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSettings {
    pub steps: u64,
    pub lr: f32,
    pub batch_size: usize,
    /// Warmup as a fraction of `steps`, then linear decay to 0.
    pub warmup: f64,
    pub weight_decay: f32,
    /// Global gradient-norm clip (0 disables).
    pub clip: f32,
    /// Batch order (dropout follows the model's own seed).
    pub seed: u64,
}

impl Default for TrainSettings {
    fn default() -> Self {
        Self {
            steps: 200,
            lr: 1e-3,
            batch_size: 16,
            warmup: 0.1,
            weight_decay: 0.01,
            clip: 1.0,
            seed: 1,
        }
    }
}

impl TrainSettings {
    /// Parses and checks settings JSON; errors name the field.
    pub fn parse(json: &str) -> Result<Self> {
        let settings: Self =
            serde_json::from_str(json).map_err(|e| anyhow!("training settings: {e}"))?;
        if settings.steps == 0 {
            bail!("training settings: steps must be at least 1");
        }
        if !(1..=MAX_BATCH).contains(&settings.batch_size) {
            bail!("training settings: batch_size must be between 1 and {MAX_BATCH}");
        }
        if !(settings.lr.is_finite() && settings.lr > 0.0) {
            bail!("training settings: lr must be a positive number");
        }
        if !(0.0..=1.0).contains(&settings.warmup) {
            bail!("training settings: warmup is a fraction of the steps, between 0 and 1");
        }
        Ok(settings)
    }

    /// The `[train]` configuration these settings stand for: linear decay, tasks in turn.
    pub fn train_config(&self) -> TrainConfig {
        TrainConfig {
            steps: Some(self.steps),
            batch_size: self.batch_size,
            lr: self.lr,
            // (a `[train] warmup` of 1 or more counts steps: all of them is a fraction of 1)
            warmup: if self.warmup < 1.0 {
                self.warmup
            } else {
                self.steps as f64
            },
            decay: Decay::Linear,
            weight_decay: self.weight_decay,
            clip: self.clip,
            seed: self.seed,
            sampler: SamplerKind::RoundRobin,
            temperature: 1.0,
            ..TrainConfig::default()
        }
    }
}

/// A fine-tuning run in progress.
struct Run {
    steps: Steps,
    /// The steps it takes in all.
    total: u64,
}

pub struct Session {
    spec: ModelSpec,
    tokenizer: TextTokenizer,
    /// The model while no run holds it.
    model: Option<MultiTaskModel>,
    run: Option<Run>,
    examples: Vec<Example>,
}

/// Where errors say the files came from.
const SOURCE_DIR: &str = "model";

impl Session {
    /// Loads a model directory from the contents of `taskgate.toml`, `model.safetensors` and
    /// `tokenizer.json`, and uploads it to `gpu`.
    pub fn load(
        gpu: &Gpu,
        config_toml: &str,
        weights: &[u8],
        tokenizer_json: Vec<u8>,
    ) -> Result<Self> {
        Self::upload(gpu, Self::parse(config_toml, weights, tokenizer_json)?)
    }

    /// Parses and checks a model directory's file contents (host only: nothing on the GPU).
    pub fn parse(config_toml: &str, weights: &[u8], tokenizer_json: Vec<u8>) -> Result<ModelDir> {
        ModelDir::from_parts(config_toml, tokenizer_json, weights, Path::new(SOURCE_DIR))
    }

    /// Uploads a parsed model directory to `gpu`.
    pub fn upload(gpu: &Gpu, dir: ModelDir) -> Result<Self> {
        let model = MultiTaskModel::new(gpu, dir.spec.clone(), &dir.params)?;
        gpu.flush()?;
        Ok(Self {
            spec: dir.spec,
            tokenizer: dir.tokenizer,
            model: Some(model),
            run: None,
            examples: Vec::new(),
        })
    }

    fn model(&self) -> &MultiTaskModel {
        match (&self.run, &self.model) {
            (Some(run), _) => &run.steps.trainer.model,
            (None, Some(model)) => model,
            (None, None) => unreachable!("a session always holds its model"),
        }
    }

    /// The encoder's dimensions and every task (name, kind, labels, gate, output width).
    pub fn summary(&self) -> Value {
        let e = &self.spec.encoder;
        let tasks: Vec<Value> = self
            .spec
            .tasks
            .iter()
            .map(|t| {
                json!({
                    "name": t.name,
                    "kind": t.kind,
                    "labels": t.labels,
                    "gate": t.gate,
                    "outputs": t.output_width(),
                })
            })
            .collect();
        json!({
            "tasks": tasks,
            "encoder": {
                "hidden": e.hidden,
                "layers": e.layers,
                "heads": e.heads,
                "vocab_size": e.vocab_size,
                "max_length": e.max_length,
            },
            "parameters": self.model().store.numel(),
        })
    }

    /// Every task's prediction for `text`, with the tokens, the whitespace words, each
    /// task's per-token gate values and its raw logits (the form of `taskgate predict
    /// --gates --logits`, plus `tokens` and `words`).
    pub async fn predict(&self, text: &str) -> Result<Value> {
        let encoded = self.tokenizer.encode(text, None)?;
        let example = Example {
            text: text.to_string(),
            text_pair: None,
            encoded,
            labels: vec![None; self.spec.tasks.len()],
        };
        let batch = collate(
            std::slice::from_ref(&example),
            &self.spec.tasks,
            self.tokenizer.pad_id(),
        );
        let outputs = infer_async(
            self.model(),
            &self.tokenizer,
            &batch,
            None,
            InferOptions {
                with_gates: true,
                beam: None,
            },
        )
        .await?;
        let extras = Extras {
            gates: true,
            logits: true,
            beam: None,
        };
        let mut line = prediction_json(
            &self.spec,
            &self.tokenizer,
            &outputs,
            batch.seq,
            0,
            &example,
            extras,
        );
        let tokens: Vec<String> = example
            .encoded
            .ids
            .iter()
            .map(|&id| self.tokenizer.token(id))
            .collect();
        line.insert("tokens".into(), json!(tokens));
        line.insert(
            "words".into(),
            json!(text.split_whitespace().collect::<Vec<_>>()),
        );
        Ok(Value::Object(line))
    }

    /// Sets the fine-tuning data: JSONL text, one `{"text", "text_pair"?, "labels": {task:
    /// label}}` per line (errors name `source` and the line). Returns the count per task.
    pub fn set_training_data(&mut self, jsonl: &str, source: &str) -> Result<Value> {
        let examples = parse_examples(jsonl, source, &self.spec.tasks, &self.tokenizer)?;
        if !examples
            .iter()
            .any(|e| e.labels.iter().any(Option::is_some))
        {
            bail!("{source}: no line labels any of this model's tasks");
        }
        let mut per_task = Map::new();
        for (i, task) in self.spec.tasks.iter().enumerate() {
            let n = examples.iter().filter(|e| e.labels[i].is_some()).count();
            per_task.insert(task.name.clone(), json!(n));
        }
        let count = examples.len();
        self.examples = examples;
        Ok(json!({ "examples": count, "per_task": per_task }))
    }

    /// Starts (or restarts, keeping the weights) fine-tuning on the data set before.
    pub fn start_training(&mut self, settings: &TrainSettings) -> Result<()> {
        if self.examples.is_empty() {
            bail!("no training data: give a JSONL file first");
        }
        let pools: Vec<Vec<Example>> = (0..self.spec.tasks.len())
            .map(|i| {
                self.examples
                    .iter()
                    .filter(|e| e.labels[i].is_some())
                    .cloned()
                    .collect()
            })
            .collect();
        let config = settings.train_config();
        let batches = Batches::new(&config, pools, self.tokenizer.pad_id());
        let model = match (self.run.take(), self.model.take()) {
            (Some(run), _) => run.steps.into_model(),
            (None, Some(model)) => model,
            (None, None) => unreachable!("a session always holds its model"),
        };
        let steps_per_epoch = batches.sampler.batches_per_epoch();
        let trainer = match build_trainer(model, &config, settings.steps, steps_per_epoch) {
            Ok(trainer) => trainer,
            Err((e, model)) => {
                self.model = Some(*model);
                bail!("cannot start training: {e:#}");
            }
        };
        self.run = Some(Run {
            steps: Steps::new(trainer, batches),
            total: settings.steps,
        });
        Ok(())
    }

    /// One training step; returns its losses once read back (awaited, never blocking).
    pub async fn train_step(&mut self) -> Result<Value> {
        let Some(run) = self.run.as_mut() else {
            bail!("training has not started");
        };
        if run.steps.trainer.step >= run.total {
            bail!("training is done ({} steps)", run.total);
        }
        run.steps.step().await?;
        let read = run.steps.read("lower the learning rate").await?;
        let Some(StepRead {
            tasks: stepped,
            stats,
        }) = read.into_iter().next_back()
        else {
            unreachable!("a step was taken");
        };
        let tasks = &self.spec.tasks;
        let mut task_losses = Map::new();
        for (t, loss) in tasks.iter().zip(&stats.task_losses) {
            if let Some(loss) = loss {
                task_losses.insert(t.name.clone(), json!(loss));
            }
        }
        Ok(json!({
            "step": run.steps.trainer.step,
            "steps": run.total,
            "lr": stats.lr,
            "loss": stats.loss,
            "task": tasks[stepped[0]].name,
            "task_losses": task_losses,
            "grad_norm": stats.grad_norm,
            "skipped": stats.skipped,
        }))
    }

    /// The current weights as the bytes of a `model.safetensors` (same names and layout as
    /// `taskgate train` writes).
    pub async fn export_safetensors(&self) -> Result<Vec<u8>> {
        let params = self.model().store.download_params_async().await?;
        serialize_params(&params, &self.spec.param_specs())
    }
}
