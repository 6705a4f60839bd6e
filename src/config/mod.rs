//! The model configuration: the `[encoder]` section and the `[[task]]` list of a
//! `CONFIG.toml` (for `taskgate init`) and of a model directory's `taskgate.toml`.
//!
//! Unknown keys are errors (a typo must not silently fall back to a default), and every
//! error names the file and the field.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

pub mod data;
mod enums;
pub mod generation;
pub mod task;
pub mod train;
pub mod tune;
pub mod weighting;

pub use data::{Column, DataFormat, DataSource};
pub use enums::Activation;
pub use generation::{DecoderConfig, DecoderInit, GenerateConfig};
pub use task::{KindName, LossWeights, TaskConfig};
pub use train::{Mixing, SamplerKind, TrainConfig};
pub use weighting::Weighting;

/// The whole configuration file.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub encoder: EncoderConfig,
    #[serde(rename = "task", default)]
    pub tasks: Vec<TaskConfig>,
    /// `[train]`: used by `taskgate train`, ignored elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train: Option<TrainConfig>,
    /// `[tune]`: used by `taskgate tune`, ignored elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tune: Option<tune::TuneConfig>,
}

/// `[encoder]`: a pretrained Hugging Face BERT directory, or the dimensions of a fresh one.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderConfig {
    /// Hugging Face BERT directory (config.json + model.safetensors [+ tokenizer.json]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pretrained: Option<PathBuf>,
    /// Fresh: the layer count. Pretrained: keep the first `layers` layers (default: all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layers: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hidden: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heads: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intermediate: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_positions: Option<usize>,
    /// Fresh: defaults to the tokenizer's vocabulary size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vocab_size: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub type_vocab_size: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer_norm_eps: Option<f64>,
    /// Tokenizer file (`tokenizer.json`); defaults to the pretrained directory's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<PathBuf>,
    /// Longest tokenized input; defaults to `max_positions`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_length: Option<usize>,
    /// Hidden-state dropout (embeddings, attention output, feed-forward output).
    #[serde(default = "default_dropout")]
    pub dropout: f32,
    /// Dropout on attention probabilities; defaults to `dropout`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attention_dropout: Option<f32>,
    /// Seeds fresh weights, task parts and dropout.
    #[serde(default)]
    pub seed: u64,
}

fn default_dropout() -> f32 {
    0.1
}

/// How the task gate scales the encoder output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GateMode {
    /// One gate per token: `W_g` is d x 1.
    #[default]
    Scalar,
    /// One gate per feature: `W_g` is d x d.
    Vector,
    /// No gate: the head sees the encoder output.
    None,
}

/// How sequence-level heads pool the tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// The first token (`[CLS]`).
    #[default]
    Cls,
    /// The mean over every token under the attention mask, `[CLS]` and `[SEP]` included.
    Mean,
}

/// The head's MLP: `hidden` layer widths (empty: one linear layer) and their activation.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HeadConfig {
    #[serde(default)]
    pub hidden: Vec<usize>,
    #[serde(default = "default_activation")]
    pub activation: Activation,
}

fn default_activation() -> Activation {
    Activation::Gelu
}

impl Default for HeadConfig {
    fn default() -> Self {
        Self {
            hidden: Vec::new(),
            activation: Activation::Gelu,
        }
    }
}

impl ModelConfig {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the config file {}", path.display()))?;
        Self::parse(&text, path)
    }

    /// Parses and checks configuration text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let config: ModelConfig = toml::from_str(text).map_err(|e| {
            // One line: file:line:column: message (toml's own text spans several lines).
            let mut key = String::new();
            let at = e.span().map(|span| {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let line_start = before.rfind('\n').map_or(0, |i| i + 1);
                let column = before.len() - line_start + 1;
                // A bad value: name its key (`key = value` with the error right of the `=`).
                if let Some((name, _)) = before[line_start..].split_once('=') {
                    let name = name.trim();
                    if !name.is_empty() && !name.starts_with('[') && !name.starts_with('#') {
                        key = format!("`{name}`: ");
                    }
                }
                format!(":{line}:{column}")
            });
            anyhow::anyhow!(
                "{}{}: {key}{}",
                path.display(),
                at.unwrap_or_default(),
                e.message().trim()
            )
        })?;
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(config)
    }

    /// Checks the values serde cannot: sizes, names, probabilities (what depends on a task's
    /// kind is checked where kinds are known: `tasks::TaskSpec::from_config`).
    pub fn validate(&self) -> Result<()> {
        let e = &self.encoder;
        for (field, value) in [
            ("layers", e.layers),
            ("hidden", e.hidden),
            ("heads", e.heads),
            ("intermediate", e.intermediate),
            ("max_positions", e.max_positions),
            ("vocab_size", e.vocab_size),
            ("type_vocab_size", e.type_vocab_size),
            ("max_length", e.max_length),
        ] {
            if value == Some(0) {
                bail!("[encoder] {field} must be at least 1");
            }
        }
        if let (Some(hidden), Some(heads)) = (e.hidden, e.heads)
            && hidden % heads != 0
        {
            bail!("[encoder] hidden ({hidden}) must be a multiple of heads ({heads})");
        }
        for (field, p) in [
            ("dropout", Some(e.dropout)),
            ("attention_dropout", e.attention_dropout),
        ] {
            if let Some(p) = p
                && !(0.0..1.0).contains(&p)
            {
                bail!("[encoder] {field} must be in [0, 1), got {p}");
            }
        }
        if e.pretrained.is_none() {
            for (field, value) in [
                ("layers", e.layers),
                ("hidden", e.hidden),
                ("heads", e.heads),
                ("intermediate", e.intermediate),
                ("max_positions", e.max_positions),
            ] {
                if value.is_none() {
                    bail!(
                        "[encoder] {field} is required for a fresh encoder (or set \
                         `pretrained` to a Hugging Face BERT directory)"
                    );
                }
            }
        }
        if self.tasks.is_empty() {
            bail!("no [[task]] defined: add at least one task");
        }
        let mut names = HashSet::new();
        for task in &self.tasks {
            let name = &task.name;
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                bail!("task name '{name}' must be non-empty ASCII letters, digits, '_' or '-'");
            }
            if !names.insert(name.clone()) {
                bail!("task name '{name}' is used twice");
            }
            if !task.lambda.is_finite() || task.lambda < 0.0 {
                bail!(
                    "task '{name}': lambda must be a finite number >= 0, got {}",
                    task.lambda
                );
            }
            if task.head.hidden.contains(&0) {
                bail!("task '{name}': head hidden sizes must be at least 1");
            }
        }
        if let Some(train) = &self.train {
            train.validate()?;
            train.validate_for_tasks(self.tasks.len())?;
        }
        Ok(())
    }

    /// The task named `name`.
    pub fn task_index(&self, name: &str) -> Option<usize> {
        self.tasks.iter().position(|t| t.name == name)
    }
}

/// Resolves a path from a config file: relative to the file's directory, else to the
/// working directory; errors name both places tried.
pub fn resolve_path(config_path: &Path, value: &Path, what: &str) -> Result<PathBuf> {
    if value.is_absolute() {
        if value.exists() {
            return Ok(value.to_path_buf());
        }
        bail!("{what} {} does not exist", value.display());
    }
    let base = config_path.parent().unwrap_or(Path::new("."));
    let beside = base.join(value);
    if beside.exists() {
        return Ok(beside);
    }
    if value.exists() {
        return Ok(value.to_path_buf());
    }
    bail!(
        "{what} {} not found (looked in {} and in the working directory)",
        value.display(),
        base.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ModelConfig> {
        ModelConfig::parse(text, Path::new("test.toml"))
    }

    const FRESH: &str = r#"
[encoder]
layers = 2
hidden = 32
heads = 4
intermediate = 64
max_positions = 128
tokenizer = "assets/tokenizer.json"
seed = 1

[[task]]
name = "sentiment"
kind = "classification"
labels = ["neg", "pos"]
gate = "scalar"
pooling = "cls"
head = { hidden = [64], activation = "gelu" }
lambda = 1.0

[[task]]
name = "score"
kind = "regression"
outputs = 2
gate = "vector"
pooling = "mean"
"#;

    #[test]
    fn parses_the_documented_format_with_defaults() {
        let c = parse(FRESH).unwrap();
        assert_eq!(c.encoder.hidden, Some(32));
        assert_eq!(c.encoder.dropout, 0.1);
        assert_eq!(c.tasks.len(), 2);
        assert_eq!(c.tasks[0].head.hidden, vec![64]);
        assert_eq!(c.tasks[1].outputs, Some(2));
        assert_eq!(c.tasks[1].head, HeadConfig::default());
        assert_eq!(c.tasks[1].lambda, 1.0);
        // Round trip through the serializer (taskgate.toml is written this way).
        let again = parse(&toml::to_string(&c).unwrap()).unwrap();
        assert_eq!(again.tasks[1].gate, GateMode::Vector);
    }

    #[test]
    fn bad_configs_name_the_problem() {
        let cases = [
            (
                FRESH.replace("lambda = 1.0", "lamda = 1.0"),
                "unknown field `lamda`",
            ),
            (FRESH.replace("heads = 4", "heads = 5"), "multiple of heads"),
            (
                FRESH.replace("name = \"score\"", "name = \"sentiment\""),
                "used twice",
            ),
            (FRESH.replace("layers = 2\n", ""), "layers is required"),
            (
                FRESH.replace("seed = 1", "dropout = 1.5"),
                "dropout must be in [0, 1)",
            ),
            (
                FRESH.replace("gate = \"scalar\"", "gate = \"matrix\""),
                "unknown variant `matrix`",
            ),
        ];
        for (text, expected) in cases {
            let err = parse(&text).unwrap_err().to_string();
            assert!(err.contains(expected), "expected '{expected}' in: {err}");
            assert!(err.starts_with("test.toml"), "names the file: {err}");
        }
        let err = parse("[encoder]\nlayers = 'two'\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("test.toml:2:"), "{err}");
        assert!(!err.contains('\n'), "one line: {err}");
    }
}
