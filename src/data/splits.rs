//! A task's train/dev/test files turned into tokenized [`Example`]s: label sets inferred from
//! the training file when the config gives none, every label checked against the set.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Result, anyhow, bail};
use serde_json::Value;

use super::formats::{Record, read_records};
use super::jsonl::Example;
use crate::config::DataSource;
use crate::tasks::TaskSpec;
use crate::tasks::{UnseenLabels, parse_label};
use crate::tokenize::TextTokenizer;

/// Which split of a task's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    Train,
    Dev,
    Test,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Dev => "dev",
            Split::Test => "test",
        }
    }

    /// The task's file for this split, if any.
    pub fn path(self, source: &DataSource) -> Option<&Path> {
        match self {
            Split::Train => source.train.as_deref(),
            Split::Dev => source.dev.as_deref(),
            Split::Test => source.test.as_deref(),
        }
    }
}

/// The label names found in `records` (sorted), for kinds that have label names.
pub fn infer_labels(task: &TaskSpec, path: &Path, records: &[Record]) -> Result<Vec<String>> {
    let mut names = BTreeSet::new();
    for r in records {
        let at = || format!("{}:{}: task '{}'", path.display(), r.line, task.name);
        let values = task
            .kind
            .label_names(&r.label)
            .map_err(|expected| anyhow!("{}: expected {expected}, got {}", at(), r.label))?;
        for v in values {
            match v {
                Value::String(s) => {
                    names.insert(s.clone());
                }
                Value::Number(n) => {
                    names.insert(n.to_string());
                }
                other => bail!("{}: expected a label name, got {other}", at()),
            }
        }
    }
    if names.is_empty() {
        bail!("{}: task '{}': no labels found", path.display(), task.name);
    }
    Ok(names.into_iter().collect())
}

/// A label as a data file holds it, in the form the kinds parse and JSONL files take: values
/// as they are; for kinds with named outputs numbers become names (`1`, `-1` name classes).
pub fn label_value(task: &TaskSpec, value: &Value) -> Value {
    if task.kind.named_outputs() {
        label_as_names(value)
    } else {
        value.clone()
    }
}

/// Classification labels may be JSON numbers in the file (`1`, `-1`); they name classes.
fn label_as_names(value: &Value) -> Value {
    match value {
        Value::Number(n) => Value::String(n.to_string()),
        Value::Array(items) => Value::Array(items.iter().map(label_as_names).collect()),
        other => other.clone(),
    }
}

/// Tokenizes `records` of task `task_index` (of `tasks`) into examples labelled for that task
/// only; errors name the file and line. A label outside the task's set is an error, or with
/// `unseen` (evaluation files) recorded there.
pub fn to_examples(
    tasks: &[TaskSpec],
    task_index: usize,
    path: &Path,
    records: Vec<Record>,
    tokenizer: &TextTokenizer,
    mut unseen: Option<&mut UnseenLabels>,
) -> Result<Vec<Example>> {
    let task = &tasks[task_index];
    records
        .into_iter()
        .map(|r| {
            let in_file = |e: anyhow::Error| anyhow!("{}:{}: {e}", path.display(), r.line);
            let encoded = tokenizer
                .encode(&r.text, r.text_pair.as_deref())
                .map_err(in_file)?;
            let value = label_value(task, &r.label);
            let label = parse_label(task, &value, encoded.n_words, unseen.as_deref_mut())
                .map_err(in_file)?;
            let mut labels = vec![None; tasks.len()];
            labels[task_index] = Some(label);
            Ok(Example {
                text: r.text,
                text_pair: r.text_pair,
                encoded,
                labels,
            })
        })
        .collect()
}

/// Reads one split of one task (`None` when the task has no file for it).
pub fn load_split(
    tasks: &[TaskSpec],
    sources: &[DataSource],
    task_index: usize,
    split: Split,
    tokenizer: &TextTokenizer,
) -> Result<Option<Vec<Example>>> {
    let Some(path) = split.path(&sources[task_index]) else {
        return Ok(None);
    };
    let records = read_records(&tasks[task_index], &sources[task_index], path)?;
    to_examples(tasks, task_index, path, records, tokenizer, None).map(Some)
}

/// One task's examples of a dev or test file, with the labels it has that training never
/// saw (they count as errors: the model cannot predict them).
pub struct EvalSet {
    pub path: std::path::PathBuf,
    pub examples: Vec<Example>,
    pub unseen: UnseenLabels,
}

impl EvalSet {
    /// The task's label names, then the unseen ones (the metrics' label set).
    pub fn label_names(&self, task: &TaskSpec) -> Vec<String> {
        let mut names = task.labels.clone().unwrap_or_default();
        names.extend(self.unseen.names.iter().cloned());
        names
    }

    /// A warning about the unseen labels, if there are any.
    pub fn warning(&self, task: &TaskSpec) -> Option<String> {
        (!self.unseen.is_empty()).then(|| {
            format!(
                "{}: task '{}': label(s) {} never occur in training, so the model cannot \
                 predict them; those examples count as errors",
                self.path.display(),
                task.name,
                self.unseen.describe()
            )
        })
    }
}

/// Reads one dev or test split of one task for evaluation (`None` when the task has no file
/// for it); unlike training data, labels outside the task's set are kept (see [`EvalSet`]).
pub fn load_eval_split(
    tasks: &[TaskSpec],
    sources: &[DataSource],
    task_index: usize,
    split: Split,
    tokenizer: &TextTokenizer,
) -> Result<Option<EvalSet>> {
    let Some(path) = split.path(&sources[task_index]) else {
        return Ok(None);
    };
    let records = read_records(&tasks[task_index], &sources[task_index], path)?;
    let mut unseen = UnseenLabels::default();
    let examples = to_examples(
        tasks,
        task_index,
        path,
        records,
        tokenizer,
        Some(&mut unseen),
    )?;
    Ok(Some(EvalSet {
        path: path.to_path_buf(),
        examples,
        unseen,
    }))
}

/// True when `task` has label names to infer: named outputs, and none in the config.
pub fn needs_labels(task: &TaskSpec) -> bool {
    task.kind.named_outputs() && task.labels.is_none()
}

/// Sets `task.labels` from its training file `train` (the file's path as resolved).
pub fn infer_labels_from(task: &mut TaskSpec, source: &DataSource, train: &Path) -> Result<()> {
    let records = read_records(task, source, train)?;
    task.labels = Some(infer_labels(task, train, &records)?);
    task.kind
        .check(task)
        .map_err(|e| anyhow!("{}: {e}", train.display()))
}

/// Fills in every task's missing `labels` from its training file.
pub fn infer_missing_labels(tasks: &mut [TaskSpec], sources: &[DataSource]) -> Result<()> {
    for (task, source) in tasks
        .iter_mut()
        .zip(sources)
        .filter(|(t, _)| needs_labels(t))
    {
        let Some(path) = source.train.clone() else {
            bail!(
                "task '{}': give its `labels` or a `train` file to infer them from",
                task.name
            );
        };
        infer_labels_from(task, source, &path)?;
    }
    Ok(())
}
