//! A task as the model sees it ([`TaskSpec`]): its kind (resolved in the registry), outputs,
//! gate, pooling, head and loss weight, built from a config's `[[task]]` with the checks that
//! depend on the kind.

use std::collections::HashSet;

use anyhow::{Result, anyhow, bail};

use super::{LossWeightKey, TaskKind};
use crate::config::{
    DataSource, DecoderConfig, GateMode, GenerateConfig, HeadConfig, KindName, LossWeights,
    ModelConfig, Pooling, TaskConfig,
};
use crate::tokenize::WordSplit;

/// A task as the model sees it: kind, outputs, gate, head and loss weight.
#[derive(Clone, Debug)]
pub struct TaskSpec {
    pub name: String,
    pub kind: TaskKind,
    /// Class names or tags (kinds with named outputs).
    pub labels: Option<Vec<String>>,
    /// Kinds that predict values: how many (default 1).
    pub outputs: Option<usize>,
    pub gate: GateMode,
    /// Sequence-level kinds only (default `cls`).
    pub pooling: Option<Pooling>,
    pub head: HeadConfig,
    pub lambda: f32,
    /// `class_weights` (kinds whose loss is a cross-entropy over classes).
    pub class_weights: Option<LossWeights>,
    /// `pos_weight` (kinds whose loss is a BCE per label).
    pub pos_weight: Option<LossWeights>,
    /// Token-level kinds: how `predict` cuts raw text into words.
    pub word_split: Option<WordSplit>,
    /// Generation: the decoder (sizes resolved against the encoder when the model is built).
    pub decoder: Option<DecoderConfig>,
    /// Generation: how `predict` and `eval` decode.
    pub generate: Option<GenerateConfig>,
    /// Generation: label smoothing of the token cross-entropy.
    pub label_smoothing: Option<f32>,
}

impl TaskSpec {
    /// A task with every optional field unset (lambda 1, scalar gate, linear head).
    pub fn new(name: &str, kind: TaskKind) -> Self {
        Self {
            name: name.into(),
            kind,
            labels: None,
            outputs: None,
            gate: GateMode::default(),
            pooling: None,
            head: HeadConfig::default(),
            lambda: 1.0,
            class_weights: None,
            pos_weight: None,
            word_split: None,
            decoder: None,
            generate: None,
            label_smoothing: None,
        }
    }

    /// The model side of `task`: its kind looked up among the registered ones, and the
    /// settings checked against it. Labels may still be missing when a training file is
    /// given (they are inferred from it).
    pub fn from_config(task: &TaskConfig) -> Result<Self> {
        let name = &task.name;
        let kind = TaskKind::named(&task.kind.0).ok_or_else(|| {
            let known: Vec<String> = super::all().iter().map(|k| format!("`{k}`")).collect();
            anyhow!(
                "task '{name}': kind: unknown variant `{}`, expected one of {}",
                task.kind,
                known.join(", ")
            )
        })?;
        if !kind.is_sequence_level() && task.pooling.is_some() {
            bail!("task '{name}': a {kind} task has no `pooling`");
        }
        if kind.is_sequence_level() && task.word_split.is_some() {
            bail!(
                "task '{name}': `word_split` is for token-level tasks (token_classification) only"
            );
        }
        if !kind.generates_text() {
            for (field, set) in [
                ("decoder", task.decoder.is_some()),
                ("generate", task.generate.is_some()),
                ("label_smoothing", task.label_smoothing.is_some()),
                ("target_column", task.target_column.is_some()),
            ] {
                if set {
                    bail!("task '{name}': `{field}` is for generation tasks only");
                }
            }
        } else if task.label_column.is_some() {
            bail!(
                "task '{name}': a generation task reads its `target_column` (default \"target\"), not a `label_column`"
            );
        }
        if kind.generates_text() {
            if task.labels.is_some() {
                bail!("task '{name}': a generation task has targets, not `labels`");
            }
        } else if !kind.named_outputs() {
            if task.labels.is_some() {
                bail!("task '{name}': a {kind} task has `outputs`, not `labels`");
            }
            if task.outputs == Some(0) {
                bail!("task '{name}': outputs must be at least 1");
            }
        } else {
            if task.outputs.is_some() {
                bail!(
                    "task '{name}': `outputs` is for tasks that predict values (regression) only"
                );
            }
            match &task.labels {
                None if task.train.is_none() => bail!(
                    "task '{name}': give its `labels` (class names or tags), or a `train` file \
                     to infer them from"
                ),
                None => {} // inferred from the training file
                Some(labels) if labels.is_empty() => bail!("task '{name}': `labels` is empty"),
                Some(labels) => {
                    let mut seen = HashSet::new();
                    if let Some(label) = labels.iter().find(|l| !seen.insert(*l)) {
                        bail!("task '{name}': label '{label}' appears twice");
                    }
                }
            }
        }
        let spec = Self {
            name: name.clone(),
            kind,
            labels: task.labels.clone(),
            outputs: task.outputs,
            gate: task.gate,
            pooling: task.pooling,
            head: task.head.clone(),
            lambda: task.lambda,
            class_weights: task.class_weights.clone(),
            pos_weight: task.pos_weight.clone(),
            word_split: task.word_split,
            decoder: match kind.generates_text() {
                true => Some(task.decoder.clone().unwrap_or_default()),
                false => None,
            },
            generate: task.generate.clone(),
            label_smoothing: task.label_smoothing,
        };
        spec.check_loss_weights()?;
        kind.check(&spec)?;
        Ok(spec)
    }

    /// Every task of `config`, resolved.
    pub fn all_from(config: &ModelConfig) -> Result<Vec<Self>> {
        config.tasks.iter().map(Self::from_config).collect()
    }

    /// [`TaskSpec::all_from`] of the config read from `path`, whose errors name the file.
    pub fn all_in(config: &ModelConfig, path: &std::path::Path) -> Result<Vec<Self>> {
        Self::all_from(config).map_err(|e| anyhow!("{}: {e}", path.display()))
    }

    /// The `[[task]]` of this task reading its data from `source`.
    pub fn to_config(&self, source: &DataSource) -> TaskConfig {
        let s = source.clone();
        TaskConfig {
            name: self.name.clone(),
            kind: KindName(self.kind.name().into()),
            labels: self.labels.clone(),
            outputs: self.outputs,
            gate: self.gate,
            pooling: self.pooling,
            head: self.head.clone(),
            lambda: self.lambda,
            class_weights: self.class_weights.clone(),
            pos_weight: self.pos_weight.clone(),
            word_split: self.word_split,
            decoder: self.decoder.clone(),
            generate: self.generate.clone(),
            label_smoothing: self.label_smoothing,
            train: s.train,
            dev: s.dev,
            test: s.test,
            format: s.format,
            text_column: s.text_column,
            pair_column: s.pair_column,
            label_column: s.label_column,
            target_column: s.target_column,
            delimiter: s.delimiter,
            header: s.header,
            tag_column: s.tag_column,
            label_separator: s.label_separator,
        }
    }

    /// Checks `class_weights` and `pos_weight` against the kind (which of them its loss
    /// takes) and, once the labels are known, their length; run again after inference.
    pub fn check_loss_weights(&self) -> Result<()> {
        let name = &self.name;
        let accepted = self.kind.loss_weights();
        for (key, weights) in [
            (LossWeightKey::ClassWeights, &self.class_weights),
            (LossWeightKey::PosWeight, &self.pos_weight),
        ] {
            let Some(weights) = weights else { continue };
            let field = key.field();
            if accepted != Some(key) {
                let other = accepted
                    .map(|k| format!(" (it has `{}`)", k.field()))
                    .unwrap_or_default();
                bail!(
                    "task '{name}': `{field}` is not a setting of a {} task{other}",
                    self.kind
                );
            }
            let values: &[f32] = match weights {
                LossWeights::Balanced => continue,
                LossWeights::Each(w) if key == LossWeightKey::ClassWeights => bail!(
                    "task '{name}': `{field}` = {w}: give \"balanced\" or one weight per label \
                     (one number for every class changes nothing)"
                ),
                LossWeights::Each(w) => std::slice::from_ref(w),
                LossWeights::PerLabel(ws) => ws,
            };
            if let Some(bad) = values.iter().find(|w| !w.is_finite() || **w < 0.0) {
                bail!("task '{name}': `{field}`: weight {bad} is not a finite number >= 0");
            }
            if values.iter().all(|w| *w == 0.0) {
                bail!("task '{name}': `{field}`: every weight is 0, so nothing would be learnt");
            }
            if let (LossWeights::PerLabel(ws), Some(labels)) = (weights, &self.labels)
                && ws.len() != labels.len()
            {
                bail!(
                    "task '{name}': `{field}` has {} weights for {} labels ({})",
                    ws.len(),
                    labels.len(),
                    labels.join(", ")
                );
            }
        }
        Ok(())
    }

    /// The weights the loss kernel takes for `key` (one per output), none without them; an
    /// error while `"balanced"` is not yet resolved from the training file.
    pub fn loss_weight_vector(&self, key: LossWeightKey) -> Result<Option<Vec<f32>>> {
        let weights = match key {
            LossWeightKey::ClassWeights => &self.class_weights,
            LossWeightKey::PosWeight => &self.pos_weight,
        };
        Ok(match weights {
            None => None,
            Some(LossWeights::Each(w)) => Some(vec![*w; self.output_width()]),
            Some(LossWeights::PerLabel(ws)) => Some(ws.clone()),
            Some(LossWeights::Balanced) => bail!(
                "task '{}': `{}` = \"balanced\" is computed from the training file when a run \
                 starts; this model has no resolved weights",
                self.name,
                key.field()
            ),
        })
    }

    /// How `predict` cuts raw text into this (token) task's words.
    pub fn word_split(&self) -> WordSplit {
        self.word_split.unwrap_or_default()
    }

    /// The pooling of a sequence-level task (`cls` unless set).
    pub fn pooling(&self) -> Pooling {
        self.pooling.unwrap_or_default()
    }

    /// Width of the task's output layer.
    pub fn output_width(&self) -> usize {
        self.kind.output_width(self)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const FRESH: &str = r#"
[encoder]
layers = 2
hidden = 32
heads = 4
intermediate = 64
max_positions = 128
tokenizer = "assets/tokenizer.json"

[[task]]
name = "sentiment"
kind = "classification"
labels = ["neg", "pos"]

[[task]]
name = "score"
kind = "regression"
outputs = 2
pooling = "mean"

[[task]]
name = "tags"
kind = "token_classification"
labels = ["O", "B-X"]
"#;

    /// The file parsed, then every task resolved; errors name the file (as the model
    /// directory and `taskgate init` report them).
    fn check(text: &str) -> Result<Vec<TaskSpec>> {
        let path = Path::new("test.toml");
        let config = ModelConfig::parse(text, path)?;
        TaskSpec::all_in(&config, path)
    }

    #[test]
    fn tasks_resolve_their_kind_and_widths() {
        let tasks = check(FRESH).unwrap();
        assert_eq!(tasks[0].kind, TaskKind::CLASSIFICATION);
        assert_eq!(
            tasks.iter().map(TaskSpec::output_width).collect::<Vec<_>>(),
            [2, 2, 2]
        );
        assert_eq!(tasks[1].pooling(), Pooling::Mean);
        let source = DataSource::default();
        let back = TaskSpec::from_config(&tasks[2].to_config(&source)).unwrap();
        assert_eq!(back.labels, tasks[2].labels);
        assert_eq!(back.kind, TaskKind::TOKEN_CLASSIFICATION);
    }

    #[test]
    fn settings_that_do_not_fit_the_kind_name_the_file_and_the_task() {
        let cases = [
            (
                FRESH.replace("kind = \"regression\"", "kind = \"ranking\""),
                "unknown variant `ranking`",
            ),
            (
                FRESH.replace("labels = [\"neg\", \"pos\"]", "labels = []"),
                "`labels` is empty",
            ),
            (
                FRESH.replace("labels = [\"neg\", \"pos\"]", ""),
                "give its `labels`",
            ),
            (
                FRESH.replace("labels = [\"neg\", \"pos\"]", "labels = [\"a\", \"a\"]"),
                "label 'a' appears twice",
            ),
            (
                FRESH.replace("outputs = 2", "labels = [\"x\"]"),
                "has `outputs`, not `labels`",
            ),
            (
                FRESH.replace(
                    "labels = [\"O\", \"B-X\"]",
                    "labels = [\"O\"]\npooling = \"cls\"",
                ),
                "a token_classification task has no `pooling`",
            ),
        ];
        for (text, expected) in cases {
            let err = check(&text).unwrap_err().to_string();
            assert!(err.contains(expected), "expected '{expected}' in: {err}");
            assert!(err.starts_with("test.toml"), "names the file: {err}");
        }
    }

    #[test]
    fn loss_weights_are_checked_against_the_kind_and_the_labels() {
        let with = |task: usize, line: &str| {
            let marker = [
                "labels = [\"neg\", \"pos\"]",
                "outputs = 2",
                "labels = [\"O\", \"B-X\"]",
            ][task];
            check(&FRESH.replacen(marker, &format!("{marker}\n{line}"), 1))
        };
        let tasks = with(0, "class_weights = [0.5, 2]").unwrap();
        assert_eq!(
            tasks[0]
                .loss_weight_vector(LossWeightKey::ClassWeights)
                .unwrap(),
            Some(vec![0.5, 2.0])
        );
        assert_eq!(
            tasks[0].to_config(&DataSource::default()).class_weights,
            Some(LossWeights::PerLabel(vec![0.5, 2.0]))
        );
        let tasks = with(2, "class_weights = \"balanced\"").unwrap();
        assert_eq!(tasks[2].class_weights, Some(LossWeights::Balanced));
        let unresolved = tasks[2].loss_weight_vector(LossWeightKey::ClassWeights);
        assert!(format!("{:#}", unresolved.unwrap_err()).contains("balanced"));
        for (task, line, expected) in [
            (0, "class_weights = [1.0]", "has 1 weights for 2 labels"),
            (0, "class_weights = [1.0, -2.0]", "not a finite number >= 0"),
            (0, "class_weights = [0, 0]", "every weight is 0"),
            (0, "class_weights = 2.0", "one weight per label"),
            (0, "class_weights = \"even\"", "`class_weights`"),
            (
                0,
                "pos_weight = 2.0",
                "`pos_weight` is not a setting of a classification task (it has `class_weights`)",
            ),
            (
                1,
                "class_weights = [1.0, 1.0]",
                "`class_weights` is not a setting of a regression task",
            ),
        ] {
            let e = format!("{:#}", with(task, line).unwrap_err());
            assert!(e.contains(expected), "{line}: {e}");
            assert!(e.contains("test.toml"), "{line}: {e}");
            assert_eq!(e.lines().count(), 1, "{e}");
        }
    }
}
