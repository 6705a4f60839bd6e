//! Task kinds. Everything that differs between a classification, a multi-label, a regression
//! and a token-classification task lives in that kind's module, behind the [`Kind`] trait:
//! how a label is parsed and which label set it belongs to, the targets a batch carries, the
//! width of the head's output layer, the loss launcher, decoding a prediction (and its JSON),
//! the metrics and the primary metric. The rest of taskgate asks the task's [`TaskKind`].
//!
//! Adding a kind is one new file implementing [`Kind`] plus its line in [`BUILTIN`] (or, for
//! a kind defined outside this crate, one call to [`register`] before configs are read).

pub mod classification;
pub mod generation;
pub mod labels;
pub mod multilabel;
pub mod regression;
pub mod spec;
pub mod token_classification;

use std::sync::RwLock;

use anyhow::Result;
use serde::{Serialize, Serializer};
use serde_json::Value;

pub use labels::{Label, LabelNames, UnseenLabels, parse_label};
pub use spec::TaskSpec;

use crate::gpu::Tensor;
use crate::metrics::{Metrics, TaskEval};
use crate::ops::loss::{GradScale, LossOutput};

/// Whether a task predicts once per example (its head pools the sequence) or once per token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Sequence,
    Token,
}

/// PyTorch's default ignore index: a row or token without a label.
pub const IGNORE: i32 = -100;

/// Targets of one task for a batch, in the layouts the loss kernels take.
#[derive(Clone, Debug, PartialEq)]
pub enum TaskTargets {
    /// Class per row, [`IGNORE`] where unlabelled.
    Classes(Vec<i32>),
    /// Class per token (`[B * T]`), [`IGNORE`] where unlabelled.
    Tokens(Vec<i32>),
    /// `[B, outputs]` targets and a per-row mask, 1 where labelled.
    Dense { targets: Vec<f32>, mask: Vec<f32> },
    /// Generation, teacher-forced: decoder inputs `[B * seq]` (`[BOS] t1 .. tn`, then
    /// padding) and labels `[B * seq]` (`t1 .. tn [EOS]`, then [`IGNORE`]).
    Sequences {
        inputs: Vec<u32>,
        labels: Vec<i32>,
        seq: usize,
    },
}

impl TaskTargets {
    /// True when at least one row or token carries a label.
    pub fn any_labelled(&self) -> bool {
        match self {
            TaskTargets::Classes(t) | TaskTargets::Tokens(t) => t.iter().any(|&v| v != IGNORE),
            TaskTargets::Sequences { labels, .. } => labels.iter().any(|&v| v != IGNORE),
            TaskTargets::Dense { mask, .. } => mask.iter().any(|&m| m != 0.0),
        }
    }

    /// What the task's mean loss over these targets divides its sum by: the class weights
    /// of the labelled rows or tokens (1 each without `class_weights`), the target tokens of
    /// a generation task, the labelled rows times the outputs of a dense one. A data-parallel
    /// rank scales its loss by its share of the global batch's denominator, so that the
    /// ranks' gradients sum to the whole batch's.
    pub fn loss_denominator(&self, class_weights: Option<&[f32]>) -> f64 {
        let weight = |t: i32| {
            class_weights
                .and_then(|w| w.get(t as usize))
                .map_or(1.0, |&w| w as f64)
        };
        match self {
            TaskTargets::Classes(t) | TaskTargets::Tokens(t) => {
                t.iter().filter(|&&v| v != IGNORE).map(|&v| weight(v)).sum()
            }
            TaskTargets::Sequences { labels, .. } => {
                labels.iter().filter(|&&v| v != IGNORE).count() as f64
            }
            TaskTargets::Dense { targets, mask } => {
                let width = targets.len() / mask.len().max(1);
                mask.iter().map(|&m| m as f64).sum::<f64>() * width as f64
            }
        }
    }
}

/// One example of a batch as the targets see it.
pub struct TargetRow<'a> {
    /// The example's label for this task, if any.
    pub label: Option<&'a Label>,
    /// Per token position: the whitespace word it starts, if any.
    pub word_starts: &'a [Option<usize>],
}

/// One example's outputs of a task, as [`Kind::decode`] reads them.
pub struct RowOutputs<'a> {
    /// `[width]` (sequence level) or `[T, width]` (token level: every position of the row).
    pub logits: &'a [f32],
    pub width: usize,
    /// Token level: the words to tag and, per token position, the word it starts.
    pub words: &'a [String],
    pub word_starts: &'a [Option<usize>],
}

/// A decoded prediction of one task for one example.
#[derive(Clone, Debug, PartialEq)]
pub enum Prediction {
    /// Class index and the class probabilities.
    Class(usize, Vec<f32>),
    /// Per label: sigmoid probability (predicted when >= 0.5).
    Labels(Vec<f32>),
    Values(Vec<f32>),
    /// One tag index per word (`None` for words cut by `max_length`), and the words.
    Tags(Vec<Option<usize>>, Vec<String>),
    /// Generated texts, best first, each with its score (beam search: the length-normalised
    /// log-probability; greedy: the sum of the tokens' log-probabilities).
    Texts(Vec<(String, f64)>),
}

/// The per-label loss weights a kind takes, by their config key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossWeightKey {
    /// `class_weights`: PyTorch's `cross_entropy(weight=...)`.
    ClassWeights,
    /// `pos_weight`: PyTorch's `binary_cross_entropy_with_logits(pos_weight=...)`.
    PosWeight,
}

impl LossWeightKey {
    pub fn field(self) -> &'static str {
        match self {
            Self::ClassWeights => "class_weights",
            Self::PosWeight => "pos_weight",
        }
    }
}

/// What a task kind is: one implementation per kind, registered in [`BUILTIN`].
pub trait Kind: Send + Sync + 'static {
    /// The config's spelling (`kind = "..."`).
    fn name(&self) -> &'static str;

    /// True for kinds whose head is a decoder producing text (`generation`): their targets
    /// are token sequences, their loss the decoder's, their predictions generated text.
    fn generates_text(&self) -> bool {
        false
    }

    fn level(&self) -> Level;

    /// True when the outputs are named (a label set, given as `labels` or inferred from the
    /// training file); false when they are numbered values (`outputs`, default 1).
    fn named_outputs(&self) -> bool;

    /// Width of the head's output layer.
    fn output_width(&self, task: &TaskSpec) -> usize {
        if self.named_outputs() {
            task.labels.as_ref().map_or(0, Vec::len)
        } else {
            task.outputs.unwrap_or(1)
        }
    }

    /// Checks settings of `task` that this kind constrains beyond the common ones (e.g. a label
    /// count); run when the config is read, and again once labels are inferred.
    fn check(&self, task: &TaskSpec) -> Result<()> {
        let _ = task;
        Ok(())
    }

    /// The label names one record of a training file holds (kinds with named outputs), or
    /// what was expected instead (`"a list of tags"`).
    fn label_names<'v>(&self, value: &'v Value) -> Result<Vec<&'v Value>, &'static str>;

    /// A CSV/TSV label cell as the JSON label [`Kind::parse_label`] takes; `separator` splits
    /// lists. The error is the message to show after the file and line.
    fn label_from_cell(
        &self,
        task: &TaskSpec,
        cell: &str,
        separator: &str,
    ) -> Result<Value, String>;

    /// Parses `value`, the JSON label of an example whose text has `n_words` whitespace
    /// words; `names` maps label names to indices.
    fn parse_label(
        &self,
        task: &TaskSpec,
        value: &Value,
        n_words: usize,
        names: &mut LabelNames<'_>,
    ) -> Result<Label>;

    /// The task's targets for a batch padded to `seq` tokens.
    fn targets(&self, task: &TaskSpec, rows: &[TargetRow<'_>], seq: usize) -> TaskTargets;

    /// Which per-label loss weights the kind's loss takes, if any (`class_weights` for a
    /// cross-entropy over classes, `pos_weight` for a BCE per label).
    fn loss_weights(&self) -> Option<LossWeightKey> {
        None
    }

    /// The task's loss (unweighted by lambda, one element) and d(logits) times `scale` (which
    /// may read the task's weight from the GPU tensor of task weights); `task` gives the
    /// kind's loss settings (its class or positive weights).
    fn loss(
        &self,
        task: &TaskSpec,
        logits: &Tensor,
        targets: &TaskTargets,
        scale: GradScale,
    ) -> Result<LossOutput>;

    fn decode(&self, row: RowOutputs<'_>) -> Prediction;

    /// A prediction as JSON, with label names; `name(k)` names output `k`.
    fn prediction_json(&self, prediction: &Prediction, name: &dyn Fn(usize) -> String) -> Value;

    /// Adds one example's prediction and gold label to `into`; `n_labels` counts the
    /// evaluation's label names (the task's, then labels only the evaluated file has).
    fn gather(&self, into: &mut TaskEval, gold: &Label, prediction: Prediction, n_labels: usize);

    /// The metrics of what was gathered; `labels` names the classes or tags, the first
    /// `known` of them the model's own.
    fn metrics(&self, gathered: &TaskEval, labels: &[String], known: usize) -> Metrics;

    /// The metric the task is judged by when picking the best checkpoint (higher is better).
    fn primary_metric(&self) -> &'static str;
}

/// A registered task kind (compared and printed by name).
#[derive(Clone, Copy)]
pub struct TaskKind(&'static dyn Kind);

impl TaskKind {
    pub const CLASSIFICATION: TaskKind = TaskKind(&classification::Classification);
    pub const MULTILABEL: TaskKind = TaskKind(&multilabel::Multilabel);
    pub const REGRESSION: TaskKind = TaskKind(&regression::Regression);
    pub const TOKEN_CLASSIFICATION: TaskKind = TaskKind(&token_classification::TokenClassification);
    pub const GENERATION: TaskKind = TaskKind(&generation::Generation);

    /// The registered kind spelled `name`.
    pub fn named(name: &str) -> Option<TaskKind> {
        all().into_iter().find(|k| k.name() == name)
    }

    pub fn is_sequence_level(self) -> bool {
        self.level() == Level::Sequence
    }
}

impl std::ops::Deref for TaskKind {
    type Target = dyn Kind;
    fn deref(&self) -> &dyn Kind {
        self.0
    }
}

impl PartialEq for TaskKind {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for TaskKind {}

impl std::fmt::Debug for TaskKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::fmt::Display for TaskKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The kinds taskgate ships: one line per kind.
pub const BUILTIN: &[TaskKind] = &[
    TaskKind::CLASSIFICATION,
    TaskKind::MULTILABEL,
    TaskKind::REGRESSION,
    TaskKind::TOKEN_CLASSIFICATION,
    TaskKind::GENERATION,
];

static REGISTERED: RwLock<Vec<TaskKind>> = RwLock::new(Vec::new());

/// Adds a kind defined outside this module (configs can name it from then on). A name
/// already taken is an error.
pub fn register(kind: &'static dyn Kind) -> Result<()> {
    if let Some(existing) = TaskKind::named(kind.name()) {
        if std::ptr::addr_eq(existing.0, kind) {
            return Ok(());
        }
        anyhow::bail!("a task kind named '{}' is already registered", kind.name());
    }
    REGISTERED
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .push(TaskKind(kind));
    Ok(())
}

/// Every kind: the built-in ones, then the registered ones.
pub fn all() -> Vec<TaskKind> {
    let mut kinds = BUILTIN.to_vec();
    kinds.extend(
        REGISTERED
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied(),
    );
    kinds
}

impl Serialize for TaskKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// Index of the largest value (the first on ties).
pub fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &x)| {
            if x > best.1 { (i, x) } else { best }
        })
        .0
}

/// The softmax of `v` (host side, for decoding).
pub fn softmax(v: &[f32]) -> Vec<f32> {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = v.iter().map(|x| (x - max).exp()).collect();
    let s: f32 = e.iter().sum();
    e.iter().map(|x| x / s).collect()
}

pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// `[B, width]` targets and row mask from each labelled row's values (multi-label and
/// regression share this layout).
pub fn dense_targets(
    rows: &[TargetRow<'_>],
    width: usize,
    fill: impl Fn(&Label, &mut [f32]) -> bool,
) -> TaskTargets {
    let mut targets = vec![0.0; rows.len() * width];
    let mut mask = vec![0.0; rows.len()];
    for (r, row) in rows.iter().enumerate() {
        if let Some(label) = row.label
            && fill(label, &mut targets[r * width..(r + 1) * width])
        {
            mask[r] = 1.0;
        }
    }
    TaskTargets::Dense { targets, mask }
}

/// `{"label": name, "scores": {name: p}}`-style score maps.
pub fn scores_json(
    probs: &[f32],
    name: &dyn Fn(usize) -> String,
) -> serde_json::Map<String, Value> {
    probs
        .iter()
        .enumerate()
        .map(|(j, p)| (name(j), serde_json::json!(p)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_found_by_name_and_registering_one_twice_is_harmless() {
        for kind in BUILTIN {
            assert_eq!(TaskKind::named(kind.name()), Some(*kind));
        }
        assert!(
            register(&classification::Classification).is_ok(),
            "same kind twice is fine"
        );
    }

    #[test]
    fn loss_denominators_count_what_each_mean_divides_by() {
        let classes = TaskTargets::Classes(vec![0, IGNORE, 2, 2]);
        assert_eq!(classes.loss_denominator(None), 3.0);
        assert_eq!(classes.loss_denominator(Some(&[0.5, 1.0, 2.0])), 4.5);
        let tokens = TaskTargets::Tokens(vec![IGNORE, 1, IGNORE, 0]);
        assert_eq!(tokens.loss_denominator(None), 2.0);
        let dense = TaskTargets::Dense {
            targets: vec![0.0; 6],
            mask: vec![1.0, 0.0, 1.0],
        };
        assert_eq!(dense.loss_denominator(None), 4.0); // 2 rows x 2 outputs
        let sequences = TaskTargets::Sequences {
            inputs: vec![0; 6],
            labels: vec![5, 6, IGNORE, 7, IGNORE, IGNORE],
            seq: 3,
        };
        assert_eq!(sequences.loss_denominator(Some(&[9.0; 8])), 3.0);
        // A batch split in two: the shares of its denominator add up to 1.
        let whole = TaskTargets::Classes(vec![1, 0, IGNORE, 1, 0]);
        let (a, b) = (
            TaskTargets::Classes(vec![1, 0, IGNORE]),
            TaskTargets::Classes(vec![1, 0]),
        );
        let w = Some(&[3.0f32, 1.0][..]);
        let all = whole.loss_denominator(w);
        assert_eq!(
            a.loss_denominator(w) / all + b.loss_denominator(w) / all,
            1.0
        );
    }
}
