//! Evaluation metrics, computed on the host from predictions and gold labels (each task kind
//! in `crate::tasks` picks its own):
//!
//! - classification: accuracy, macro-F1, MCC (multiclass, Gorodkin's R_K);
//! - multilabel: micro-F1 and macro-F1 over labels (decision at probability 0.5);
//! - regression: Pearson, Spearman (average ranks for ties) and MSE, over all outputs;
//! - token classification: token accuracy and, when the tags are BIO, entity-level span F1
//!   (conlleval's rule: a span is correct when type, start and end all match);
//! - generated text (`generation`): exact match, and corpus BLEU and chrF exactly as
//!   sacrebleu computes them.

pub mod classification;
pub mod generation;
pub mod regression;
pub mod spans;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Metric name -> value, in a stable order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics(pub BTreeMap<String, f64>);

impl Metrics {
    pub fn get(&self, name: &str) -> Option<f64> {
        self.0.get(name).copied()
    }

    pub fn insert(&mut self, name: &str, value: f64) {
        self.0.insert(name.into(), value);
    }
}

/// Predictions of one task gathered over an evaluation set.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TaskEval {
    /// classification: (predicted, gold) class per example.
    pub classes: Vec<(usize, usize)>,
    /// multilabel: per example, (predicted set, gold set) as 0/1 per label.
    pub sets: Vec<(Vec<bool>, Vec<bool>)>,
    /// regression: (predicted, gold) per output value.
    pub values: Vec<(f64, f64)>,
    /// token classification: per sentence, (predicted, gold) tag per word.
    pub sentences: Vec<(Vec<usize>, Vec<usize>)>,
    /// generation: (generated, reference) text per example.
    pub texts: Vec<(String, String)>,
}

impl TaskEval {
    /// Examples gathered.
    pub fn len(&self) -> usize {
        self.classes.len()
            + self.sets.len()
            + self.sentences.len()
            + self.values.len()
            + self.texts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `other`'s predictions after these.
    pub fn append(&mut self, mut other: TaskEval) {
        self.classes.append(&mut other.classes);
        self.sets.append(&mut other.sets);
        self.values.append(&mut other.values);
        self.sentences.append(&mut other.sentences);
        self.texts.append(&mut other.texts);
    }
}
