//! A `[[task]]` of a config file ([`TaskConfig`], the file's flat form). It holds two things:
//! the model side (resolved into `tasks::TaskSpec` once its kind is looked up in the registry
//! of task kinds) and the [`DataSource`] (where the task's examples come from and how to read
//! them). The model never sees a data source.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::data::{Column, DataFormat, DataSource};
use super::generation::{DecoderConfig, GenerateConfig};
use super::{GateMode, HeadConfig, Pooling};
use crate::tokenize::WordSplit;

/// The name of a task kind as a config spells it (`kind = "classification"`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct KindName(pub String);

impl std::fmt::Display for KindName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One `[[task]]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TaskConfig {
    pub name: String,
    /// A registered task kind's name (`tasks::TaskKind` resolves it).
    pub kind: KindName,
    /// Class names (classification, multilabel) or tags (token_classification).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    /// Regression outputs (default 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outputs: Option<usize>,
    #[serde(default)]
    pub gate: GateMode,
    /// Sequence-level kinds only (default `cls`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pooling: Option<Pooling>,
    #[serde(default)]
    pub head: HeadConfig,
    #[serde(default = "default_lambda")]
    pub lambda: f32,
    /// Classification and token classification: per-class weights of the cross-entropy
    /// (`"balanced"`: n_samples / (n_classes * n_c), as scikit-learn; or a list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_weights: Option<LossWeights>,
    /// Multilabel: the positive terms' weights of the BCE (`"balanced"`: n_negative /
    /// n_positive per label; a list; or one number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pos_weight: Option<LossWeights>,
    /// Generation tasks: the decoder's sizes and initialisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decoder: Option<DecoderConfig>,
    /// Generation tasks: how `predict` and `eval` decode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate: Option<GenerateConfig>,
    /// Generation tasks: label smoothing of the token cross-entropy (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_smoothing: Option<f32>,
    /// Training examples (`taskgate train`); format from the extension unless `format`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train: Option<PathBuf>,
    /// Development examples (periodic evaluation, best checkpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<PathBuf>,
    /// Test examples (`taskgate eval --split test`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<PathBuf>,
    /// `jsonl`, `csv`, `tsv`, `conll` or `word_tag` (default: from the file extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<DataFormat>,
    /// CSV/TSV: the text column (a header name, or a 0-based index; default "text").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_column: Option<Column>,
    /// CSV/TSV: the optional second-text column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pair_column: Option<Column>,
    /// CSV/TSV: the label column (default "label").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_column: Option<Column>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_column: Option<Column>,
    /// CSV/TSV: the field delimiter (default "," for csv, tab for tsv).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    /// CSV/TSV: whether the first row names the columns (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<bool>,
    /// CoNLL: the 0-based column holding the tag (default: the last column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_column: Option<usize>,
    /// CSV/TSV multilabel cells: the separator between label names (default "|").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_separator: Option<String>,
    /// Token tasks: how `predict` cuts raw text into words, `whitespace` (default) or
    /// `punctuation` (BERT's basic split, as the Penn Treebank and CoNLL data are made).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub word_split: Option<WordSplit>,
}

fn default_lambda() -> f32 {
    1.0
}

impl TaskConfig {
    /// A task with every optional field unset (lambda 1, scalar gate, linear head, no data).
    pub fn new(name: &str, kind: &str) -> Self {
        Self {
            name: name.into(),
            kind: KindName(kind.into()),
            labels: None,
            outputs: None,
            gate: GateMode::default(),
            pooling: None,
            head: HeadConfig::default(),
            lambda: 1.0,
            class_weights: None,
            pos_weight: None,
            decoder: None,
            generate: None,
            label_smoothing: None,
            train: None,
            dev: None,
            test: None,
            format: None,
            text_column: None,
            pair_column: None,
            label_column: None,
            target_column: None,
            delimiter: None,
            header: None,
            tag_column: None,
            label_separator: None,
            word_split: None,
        }
    }

    /// Where this task's examples come from.
    pub fn source(&self) -> DataSource {
        DataSource {
            train: self.train.clone(),
            dev: self.dev.clone(),
            test: self.test.clone(),
            format: self.format,
            text_column: self.text_column.clone(),
            pair_column: self.pair_column.clone(),
            label_column: self.label_column.clone(),
            target_column: self.target_column.clone(),
            delimiter: self.delimiter.clone(),
            header: self.header,
            tag_column: self.tag_column,
            label_separator: self.label_separator.clone(),
        }
    }
}

/// `class_weights` (classification, token classification) or `pos_weight` (multilabel) of a
/// task: `"balanced"` (computed from the training file's label counts when a run starts, then
/// stored as a list in the model's `taskgate.toml`), one weight per label, or (pos_weight) one
/// number for every label.
#[derive(Clone, Debug, PartialEq)]
pub enum LossWeights {
    Balanced,
    Each(f32),
    PerLabel(Vec<f32>),
}

impl Serialize for LossWeights {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Balanced => s.serialize_str("balanced"),
            Self::Each(w) => s.serialize_f32(*w),
            Self::PerLabel(ws) => ws.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for LossWeights {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = LossWeights;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("\"balanced\", a list of weights (one per label) or a number")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<LossWeights, E> {
                if v == "balanced" {
                    Ok(LossWeights::Balanced)
                } else {
                    Err(E::invalid_value(serde::de::Unexpected::Str(v), &self))
                }
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<LossWeights, E> {
                Ok(LossWeights::Each(v as f32))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<LossWeights, E> {
                Ok(LossWeights::Each(v as f32))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<LossWeights, E> {
                Ok(LossWeights::Each(v as f32))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<LossWeights, A::Error> {
                let mut ws = Vec::new();
                while let Some(w) = seq.next_element::<f64>()? {
                    ws.push(w as f32);
                }
                Ok(LossWeights::PerLabel(ws))
            }
        }
        d.deserialize_any(Visitor)
    }
}
