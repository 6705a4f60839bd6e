//! `token_classification` (NER, POS): one tag per word, predicted at the word's first token
//! and trained with cross-entropy there; token accuracy (primary) and, when the tags are BIO,
//! entity-level span F1.

use anyhow::{Result, bail};
use serde_json::{Value, json};

use super::classification::class_cross_entropy;
use super::labels::{Label, LabelNames, list_items, string_list};
use super::{IGNORE, Kind, Level, Prediction, RowOutputs, TargetRow, TaskTargets, argmax};
use crate::gpu::Tensor;
use crate::metrics::{Metrics, TaskEval, classification, spans};
use crate::ops::loss::{GradScale, LossOutput};
use crate::tasks::TaskSpec;

pub struct TokenClassification;

impl Kind for TokenClassification {
    fn name(&self) -> &'static str {
        "token_classification"
    }

    fn level(&self) -> Level {
        Level::Token
    }

    fn named_outputs(&self) -> bool {
        true
    }

    fn label_names<'v>(&self, value: &'v Value) -> Result<Vec<&'v Value>, &'static str> {
        list_items(value, "a list of tags")
    }

    fn label_from_cell(&self, task: &TaskSpec, _: &str, _: &str) -> Result<Value, String> {
        Err(format!(
            "task '{}' is token_classification; use conll, word_tag or jsonl files",
            task.name
        ))
    }

    fn parse_label(
        &self,
        task: &TaskSpec,
        value: &Value,
        n_words: usize,
        names: &mut LabelNames<'_>,
    ) -> Result<Label> {
        let tags = string_list(task, value, "tags")?;
        if tags.len() != n_words {
            bail!(
                "task '{}': {} tags for {n_words} whitespace-separated words",
                task.name,
                tags.len()
            );
        }
        Ok(Label::Tags(
            tags.into_iter()
                .map(|t| names.index(task, t))
                .collect::<Result<_>>()?,
        ))
    }

    fn targets(&self, _: &TaskSpec, rows: &[TargetRow<'_>], seq: usize) -> TaskTargets {
        let mut tags = vec![IGNORE; rows.len() * seq];
        for (r, row) in rows.iter().enumerate() {
            if let Some(Label::Tags(word_tags)) = row.label {
                for (pos, word) in row.word_starts.iter().enumerate() {
                    if let Some(w) = word {
                        tags[r * seq + pos] = word_tags[*w] as i32;
                    }
                }
            }
        }
        TaskTargets::Tokens(tags)
    }

    fn loss_weights(&self) -> Option<super::LossWeightKey> {
        Some(super::LossWeightKey::ClassWeights)
    }

    fn loss(
        &self,
        task: &TaskSpec,
        logits: &Tensor,
        targets: &TaskTargets,
        scale: GradScale,
    ) -> Result<LossOutput> {
        let TaskTargets::Tokens(t) = targets else {
            bail!("token_classification targets must be one tag per token");
        };
        class_cross_entropy(task, logits, t, scale)
    }

    fn decode(&self, row: RowOutputs<'_>) -> Prediction {
        let w = row.width;
        let mut tags = vec![None; row.words.len()];
        for (pos, word) in row.word_starts.iter().enumerate() {
            if let Some(word) = word {
                tags[*word] = Some(argmax(&row.logits[pos * w..(pos + 1) * w]));
            }
        }
        Prediction::Tags(tags, row.words.to_vec())
    }

    fn prediction_json(&self, prediction: &Prediction, name: &dyn Fn(usize) -> String) -> Value {
        match prediction {
            Prediction::Tags(tags, words) => json!({
                "tags": tags.iter().map(|t| t.map(name)).collect::<Vec<_>>(),
                "words": words,
            }),
            _ => Value::Null,
        }
    }

    fn gather(&self, into: &mut TaskEval, gold: &Label, prediction: Prediction, n_labels: usize) {
        if let (Label::Tags(gold), Prediction::Tags(tags, _)) = (gold, prediction) {
            // Words cut off by max_length have no prediction: an index past every tag (unseen
            // ones too), wrong for token accuracy and outside every span.
            let predicted = tags.iter().map(|t| t.unwrap_or(n_labels)).collect();
            into.sentences.push((predicted, gold.clone()));
        }
    }

    fn metrics(&self, gathered: &TaskEval, labels: &[String], known: usize) -> Metrics {
        let mut m = Metrics::default();
        let pairs: Vec<(usize, usize)> = gathered
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
            let sentences: Vec<(Vec<&str>, Vec<&str>)> = gathered
                .sentences
                .iter()
                .map(|(p, g)| (named(p), named(g)))
                .collect();
            m.insert("span_f1", spans::span_f1(&sentences));
        }
        m
    }

    fn primary_metric(&self) -> &'static str {
        "token_accuracy"
    }
}
