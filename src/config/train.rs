//! The `[train]` section: steps or epochs, optimizer settings, evaluation and the task sampler.

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use super::weighting::{CagradOptions, DwaOptions, FamoOptions, GradNormOptions, Weighting};

/// The learning rate's course after the warm-up (see `train::schedule`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decay {
    /// The peak rate to the end.
    Constant,
    /// Linear decay to 0.
    #[default]
    Linear,
    /// Half a cosine down to 0.
    Cosine,
}

/// How each step picks the task whose examples form its batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SamplerKind {
    /// p_i proportional to N_i (the task's training examples).
    Proportional,
    /// p_i proportional to N_i^(1/T) (`temperature` = T; T = 1 is proportional).
    #[default]
    Temperature,
    /// Tasks in turn.
    RoundRobin,
}

/// What one training step trains on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mixing {
    /// One batch of one task, the task picked by the `sampler`.
    #[default]
    OneTask,
    /// One batch of every task (`batch_size` examples each), their losses combined into one
    /// optimizer step; the `sampler` is not used.
    AllTasks,
}

/// `[train]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Optimizer steps (one batch each); exclusive with `epochs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<u64>,
    /// Passes over all training examples (sum over tasks), converted to steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epochs: Option<f64>,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    #[serde(default = "default_lr")]
    pub lr: f32,
    /// Warm-up: a fraction of the steps when below 1, else a step count.
    #[serde(default = "default_warmup")]
    pub warmup: f64,
    #[serde(default)]
    pub decay: Decay,
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f32,
    /// Global gradient-norm clip (0 disables).
    #[serde(default = "default_clip")]
    pub clip: f32,
    /// Evaluate on the dev files every this many steps (0: only at the end).
    #[serde(default)]
    pub eval_every: u64,
    /// Read back and log the losses every this many steps.
    #[serde(default = "default_log_every")]
    pub log_every: u64,
    /// Seeds the task sampler and the batch order (the encoder's `seed` seeds dropout).
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub mixing: Mixing,
    #[serde(default)]
    pub sampler: SamplerKind,
    /// T of the temperature sampler.
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// How a step over every task combines their losses or gradients.
    #[serde(default)]
    pub weighting: Weighting,
    /// `[train.dwa]`: options of `weighting = "dwa"` (each option table is checked against
    /// `weighting` by `validate_weighting_tables`, in `config/weighting.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dwa: Option<DwaOptions>,
    /// `[train.famo]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub famo: Option<FamoOptions>,
    /// `[train.gradnorm]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gradnorm: Option<GradNormOptions>,
    /// `[train.cagrad]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cagrad: Option<CagradOptions>,
    /// A trained model whose encoder, and whose tasks that this config has with the same
    /// shapes, start the run: a run directory (its best checkpoint), a model directory or a
    /// `taskgate export --format hf` directory (`taskgate train --init-from DIR`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_from: Option<std::path::PathBuf>,
    /// Tasks of `init_from` to start fresh anyway (their labels or head changed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reinit: Vec<String>,
    /// Parameters left as they are: prefixes of parameter names (`embeddings`,
    /// `encoder.layer.0`, `tasks.NAME`, ...; `encoder` is the whole encoder, embeddings
    /// included). They get no optimizer state and no update.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub freeze: Vec<String>,
    /// Layer-wise learning-rate decay: the top encoder layer trains at `lr`, each layer below
    /// at the factor times the one above, the embeddings last; tasks at `lr`. 1 is off.
    #[serde(default = "default_layer_lr_decay", skip_serializing_if = "is_one")]
    pub layer_lr_decay: f64,
}

fn default_layer_lr_decay() -> f64 {
    1.0
}
fn is_one(x: &f64) -> bool {
    *x == 1.0
}

fn default_batch_size() -> usize {
    16
}
fn default_lr() -> f32 {
    1e-4
}
fn default_warmup() -> f64 {
    0.06
}
fn default_weight_decay() -> f32 {
    0.01
}
fn default_clip() -> f32 {
    1.0
}
fn default_log_every() -> u64 {
    10
}
fn default_temperature() -> f64 {
    2.0
}

impl Default for TrainConfig {
    fn default() -> Self {
        toml::from_str("").expect("every [train] field has a default")
    }
}

impl TrainConfig {
    /// Checks the values serde cannot.
    pub fn validate(&self) -> Result<()> {
        match (self.steps, self.epochs) {
            (Some(_), Some(_)) => bail!("[train] give `steps` or `epochs`, not both"),
            (Some(0), _) => bail!("[train] steps must be at least 1"),
            (_, Some(e)) if !(e.is_finite() && e > 0.0) => {
                bail!("[train] epochs must be a positive number, got {e}")
            }
            _ => {}
        }
        if self.batch_size == 0 {
            bail!("[train] batch_size must be at least 1");
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            bail!("[train] lr must be a positive number, got {}", self.lr);
        }
        if !(self.warmup.is_finite() && self.warmup >= 0.0) {
            bail!("[train] warmup must be >= 0, got {}", self.warmup);
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            bail!(
                "[train] weight_decay must be >= 0, got {}",
                self.weight_decay
            );
        }
        if !(self.clip.is_finite() && self.clip >= 0.0) {
            bail!("[train] clip must be >= 0, got {}", self.clip);
        }
        if self.log_every == 0 {
            bail!("[train] log_every must be at least 1");
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            bail!(
                "[train] temperature must be positive, got {}",
                self.temperature
            );
        }
        if !(self.layer_lr_decay > 0.0 && self.layer_lr_decay <= 1.0) {
            bail!(
                "[train] layer_lr_decay must be in (0, 1] (1 is off), got {}",
                self.layer_lr_decay
            );
        }
        if let Some(empty) = self.freeze.iter().position(|p| p.trim().is_empty()) {
            bail!(
                "[train] freeze[{empty}] is empty; give parameter-name prefixes such as \
                 \"encoder\", \"embeddings\", \"encoder.layer.0\" or \"tasks.NAME\""
            );
        }
        self.validate_weighting_tables()?;
        if self.weighting.combines_tasks() && self.mixing != Mixing::AllTasks {
            bail!(
                "[train] weighting = \"{}\" combines every task's loss in each step: set \
                 mixing = \"all_tasks\" (or weighting = \"static\")",
                self.weighting.name()
            );
        }
        Ok(())
    }

    /// Checks what depends on the number of tasks trained (after `--only`).
    pub fn validate_for_tasks(&self, tasks: usize) -> Result<()> {
        if self.weighting.combines_tasks() && tasks < 2 {
            bail!(
                "[train] weighting = \"{}\" combines several tasks, but {tasks} task is \
                 configured: use weighting = \"static\" (or add tasks)",
                self.weighting.name()
            );
        }
        Ok(())
    }

    /// Warm-up steps out of `total`.
    pub fn warmup_steps(&self, total: u64) -> u64 {
        if self.warmup < 1.0 {
            (self.warmup * total as f64).round() as u64
        } else {
            self.warmup as u64
        }
    }
}
