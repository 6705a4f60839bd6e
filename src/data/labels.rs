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

fn index_of(task: &TaskConfig, name: &str) -> Result<usize> {
    let labels = task.labels.as_deref().unwrap_or(&[]);
    match labels.iter().position(|l| l == name) {
        Some(i) => Ok(i),
        None => bail!(
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
/// example's text (token tasks need one tag per word).
pub fn parse_label(task: &TaskConfig, value: &Value, n_words: usize) -> Result<Label> {
    Ok(match task.kind {
        TaskKind::Classification => {
            let Some(name) = value.as_str() else {
                bail!("task '{}': expected a label name, got {value}", task.name);
            };
            Label::Class(index_of(task, name)?)
        }
        TaskKind::Multilabel => {
            let mut classes = string_list(task, value, "label names")?
                .into_iter()
                .map(|n| index_of(task, n))
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
                    .map(|t| index_of(task, t))
                    .collect::<Result<_>>()?,
            )
        }
    })
}
