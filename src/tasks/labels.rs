//! Labels of one example for one task, and the task's label names: indices for the names a
//! task knows, and (evaluation files) indices past the set for names it does not.

use crate::tasks::TaskSpec;
use anyhow::{Result, bail};
use serde_json::Value;

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
    /// A target text and its tokens as the decoder reads them: `[BOS] t1 .. tn [EOS]`
    /// (generation; filled by `data` with the shared tokenizer, empty until then).
    Text { text: String, tokens: Vec<u32> },
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

/// Resolves a task's label names to indices: a name outside the set is an error, or with
/// `unseen` (evaluation files) recorded there and indexed past the set.
pub struct LabelNames<'a> {
    pub unseen: Option<&'a mut UnseenLabels>,
}

impl LabelNames<'_> {
    pub fn index(&mut self, task: &TaskSpec, name: &str) -> Result<usize> {
        let labels = task.labels.as_deref().unwrap_or(&[]);
        match (
            labels.iter().position(|l| l == name),
            self.unseen.as_deref_mut(),
        ) {
            (Some(i), _) => Ok(i),
            (None, Some(unseen)) => Ok(unseen.index(labels.len(), name)),
            (None, None) => bail!(
                "task '{}': unknown label '{name}' (known: {})",
                task.name,
                labels.join(", ")
            ),
        }
    }
}

/// `value` as a list of strings, or an error saying a list of `what` was expected.
pub fn string_list<'v>(task: &TaskSpec, value: &'v Value, what: &str) -> Result<Vec<&'v str>> {
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

/// The items of a list label (label names or tags), or `expected`.
pub fn list_items<'v>(
    value: &'v Value,
    expected: &'static str,
) -> Result<Vec<&'v Value>, &'static str> {
    match value {
        Value::Array(items) => Ok(items.iter().collect()),
        _ => Err(expected),
    }
}

/// Parses `value` as a label of `task` (`n_words`: whitespace words of the example's text).
/// A label outside the task's set is an error, or with `unseen` (evaluation files) recorded
/// there and indexed past the set.
pub fn parse_label(
    task: &TaskSpec,
    value: &Value,
    n_words: usize,
    unseen: Option<&mut UnseenLabels>,
) -> Result<Label> {
    task.kind
        .parse_label(task, value, n_words, &mut LabelNames { unseen })
}
