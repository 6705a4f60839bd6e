//! Evaluation metrics, per task kind, computed on the host from predictions and gold labels.
//!
//! - classification: accuracy, macro-F1, MCC (multiclass, Gorodkin's R_K);
//! - multilabel: micro-F1 and macro-F1 over labels (decision at probability 0.5);
//! - regression: Pearson, Spearman (average ranks for ties) and MSE, over all outputs;
//! - token classification: token accuracy and, when the tags are BIO, entity-level span F1
//!   (conlleval's rule: a span is correct when type, start and end all match).

pub mod classification;
pub mod regression;
pub mod spans;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::TaskKind;

/// Metric name -> value, in a stable order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics(pub BTreeMap<String, f64>);

impl Metrics {
    pub fn get(&self, name: &str) -> Option<f64> {
        self.0.get(name).copied()
    }

    fn insert(&mut self, name: &str, value: f64) {
        self.0.insert(name.into(), value);
    }
}

/// The metric a task is judged by when picking the best checkpoint (higher is better).
pub fn primary_metric(kind: TaskKind) -> &'static str {
    match kind {
        TaskKind::Classification => "accuracy",
        TaskKind::Multilabel => "micro_f1",
        TaskKind::Regression => "pearson",
        TaskKind::TokenClassification => "token_accuracy",
    }
}

/// Predictions of one task gathered over an evaluation set.
#[derive(Clone, Debug, Default)]
pub struct TaskEval {
    /// classification: (predicted, gold) class per example.
    pub classes: Vec<(usize, usize)>,
    /// multilabel: per example, (predicted set, gold set) as 0/1 per label.
    pub sets: Vec<(Vec<bool>, Vec<bool>)>,
    /// regression: (predicted, gold) per output value.
    pub values: Vec<(f64, f64)>,
    /// token classification: per sentence, (predicted, gold) tag per word.
    pub sentences: Vec<(Vec<usize>, Vec<usize>)>,
}

impl TaskEval {
    /// The metrics of `kind` for what was gathered; `labels` names the classes or tags, the
    /// first `known` of them the model's own (the rest occur only in the evaluated file).
    pub fn metrics(&self, kind: TaskKind, labels: &[String], known: usize) -> Metrics {
        let mut m = Metrics::default();
        match kind {
            TaskKind::Classification => {
                let k = labels.len().max(1);
                m.insert("accuracy", classification::accuracy(&self.classes));
                m.insert("macro_f1", classification::macro_f1(&self.classes, k));
                m.insert("mcc", classification::mcc(&self.classes, k));
            }
            TaskKind::Multilabel => {
                let (micro, macro_) = classification::multilabel_f1(&self.sets);
                m.insert("micro_f1", micro);
                m.insert("macro_f1", macro_);
            }
            TaskKind::Regression => {
                m.insert("pearson", regression::pearson(&self.values));
                m.insert("spearman", regression::spearman(&self.values));
                m.insert("mse", regression::mse(&self.values));
            }
            TaskKind::TokenClassification => {
                let pairs: Vec<(usize, usize)> = self
                    .sentences
                    .iter()
                    .flat_map(|(p, g)| p.iter().copied().zip(g.iter().copied()))
                    .collect();
                m.insert("token_accuracy", classification::accuracy(&pairs));
                if spans::is_bio(&labels[..known.min(labels.len())]) {
                    let named = |tags: &[usize]| -> Vec<&str> {
                        tags.iter()
                            .map(|&t| labels.get(t).map_or("O", String::as_str))
                            .collect()
                    };
                    let sentences: Vec<(Vec<&str>, Vec<&str>)> = self
                        .sentences
                        .iter()
                        .map(|(p, g)| (named(p), named(g)))
                        .collect();
                    m.insert("span_f1", spans::span_f1(&sentences));
                }
            }
        }
        m.insert("examples", self.len() as f64);
        m
    }

    /// Examples gathered.
    pub fn len(&self) -> usize {
        self.classes.len() + self.sets.len() + self.sentences.len() + self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
