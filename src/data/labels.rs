//! Labels of one example for one task, parsed from JSON according to the task's kind.

use anyhow::{Result, bail};
use serde_json::Value;

use crate::config::{TaskConfig, TaskKind};

/// A parsed label.
#[derive(Clone, Debug, PartialEq)]
pub enum Label {
    /// Class index (classification).
    Class(usize),
    /// Class indices present (multilabel).
    Classes(Vec<usize>),
    /// Target values (regression).
    Values(Vec<f32>),
    /// One tag index per whitespace-separated word of `text` (token classification).
    Tags(Vec<usize>),
}

/// Labels of an evaluation file that the task's label set lacks (a rare tag only the test
/// split has): each gets an index past the set, so the model, which cannot predict it, is
/// scored wrong there, and is counted for a warning.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UnseenLabels {
    /// In order of first appearance; label `known + i` is `names[i]`.
    pub names: Vec<String>,
    /// How often each occurred.
    pub counts: Vec<usize>,
}

impl UnseenLabels {
    fn index(&mut self, known: usize, name: &str) -> usize {
        let i = match self.names.iter().position(|n| n == name) {
            Some(i) => i,
            None => {
                self.names.push(name.to_string());
                self.counts.push(0);
                self.names.len() - 1
            }
        };
        self.counts[i] += 1;
        known + i
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// `'X' (3 times), 'Y' (1 time)`.
    pub fn describe(&self) -> String {
        self.names
            .iter()
            .zip(&self.counts)
            .map(|(n, &c)| format!("'{n}' ({c} time{})", if c == 1 { "" } else { "s" }))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn index_of(
    task: &TaskConfig,
    name: &str,
    unseen: &mut Option<&mut UnseenLabels>,
) -> Result<usize> {
    let labels = task.labels.as_deref().unwrap_or(&[]);
    match (labels.iter().position(|l| l == name), unseen) {
        (Some(i), _) => Ok(i),
        (None, Some(unseen)) => Ok(unseen.index(labels.len(), name)),
        (None, None) => bail!(
            "task '{}': unknown label '{name}' (known: {})",
            task.name,
            labels.join(", ")
        ),
    }
}

fn string_list<'a>(task: &TaskConfig, value: &'a Value, what: &str) -> Result<Vec<&'a str>> {
    let Some(items) = value.as_array() else {
        bail!(
            "task '{}': expected a list of {what}, got {value}",
            task.name
        );
    };
    items
        .iter()
        .map(|v| match v.as_str() {
            Some(s) => Ok(s),
            None => bail!("task '{}': expected {what} as strings, got {v}", task.name),
        })
        .collect()
}

/// Parses `value` as a label of `task`; `n_words` is the number of whitespace words of the
/// example's text (token tasks need one tag per word). A label outside the task's set is an
/// error.
pub fn parse_label(task: &TaskConfig, value: &Value, n_words: usize) -> Result<Label> {
    parse_label_with(task, value, n_words, None)
}

/// [`parse_label`]; with `unseen`, a label outside the task's set is recorded there and
/// indexed past the set instead (evaluation files).
pub fn parse_label_with(
    task: &TaskConfig,
    value: &Value,
    n_words: usize,
    mut unseen: Option<&mut UnseenLabels>,
) -> Result<Label> {
    Ok(match task.kind {
        TaskKind::Classification => {
            let Some(name) = value.as_str() else {
                bail!("task '{}': expected a label name, got {value}", task.name);
            };
            Label::Class(index_of(task, name, &mut unseen)?)
        }
        TaskKind::Multilabel => {
            let mut classes = string_list(task, value, "label names")?
                .into_iter()
                .map(|n| index_of(task, n, &mut unseen))
                .collect::<Result<Vec<_>>>()?;
            classes.sort_unstable();
            classes.dedup();
            Label::Classes(classes)
        }
        TaskKind::Regression => {
            let outputs = task.output_width();
            let values: Vec<f32> = match value {
                Value::Number(n) => vec![n.as_f64().unwrap_or(f64::NAN) as f32],
                Value::Array(items) => items
                    .iter()
                    .map(|v| v.as_f64().map(|x| x as f32).unwrap_or(f32::NAN))
                    .collect(),
                _ => bail!(
                    "task '{}': expected a number or a list of numbers, got {value}",
                    task.name
                ),
            };
            if values.len() != outputs {
                bail!(
                    "task '{}': expected {outputs} value(s), got {}",
                    task.name,
                    values.len()
                );
            }
            if values.iter().any(|v| !v.is_finite()) {
                bail!(
                    "task '{}': values must be finite numbers, got {value}",
                    task.name
                );
            }
            Label::Values(values)
        }
        TaskKind::TokenClassification => {
            let tags = string_list(task, value, "tags")?;
            if tags.len() != n_words {
                bail!(
                    "task '{}': {} tags for {n_words} whitespace-separated words",
                    task.name,
                    tags.len()
                );
            }
            Label::Tags(
                tags.into_iter()
                    .map(|t| index_of(task, t, &mut unseen))
                    .collect::<Result<_>>()?,
            )
        }
    })
}
