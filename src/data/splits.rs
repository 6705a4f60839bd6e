//! A task's train/dev/test files turned into tokenized [`Example`]s: label sets inferred from
//! the training file when the config gives none, every label checked against the set.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Result, anyhow, bail};
use serde_json::Value;

use super::formats::{Record, read_records};
use super::jsonl::Example;
use super::targets::{cut_warning, encode_target};
use crate::config::{DataSource, LossWeights};
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
    let mut cut = 0;
    let examples = records
        .into_iter()
        .map(|r| {
            let in_file = |e: anyhow::Error| anyhow!("{}:{}: {e}", path.display(), r.line);
            let encoded = tokenizer
                .encode(&r.text, r.text_pair.as_deref())
                .map_err(in_file)?;
            let value = label_value(task, &r.label);
            let mut label = parse_label(task, &value, encoded.n_words, unseen.as_deref_mut())
                .map_err(in_file)?;
            cut += encode_target(task, &mut label, tokenizer).map_err(in_file)? as usize;
            let mut labels = vec![None; tasks.len()];
            labels[task_index] = Some(label);
            Ok(Example {
                text: r.text,
                text_pair: r.text_pair,
                encoded,
                labels,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if let Some(warning) = cut_warning(task, path, cut) {
        eprintln!("{warning}");
    }
    Ok(examples)
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

/// Replaces a `"balanced"` `class_weights` or `pos_weight` of `task` (whose labels are known)
/// by the weights its training file `train` gives:
/// - class weights: n_samples / (n_classes * n_c), scikit-learn's `compute_class_weight(
///   "balanced")`, counting examples (classification) or tagged words (token classification);
/// - positive weights: n_negative / n_positive per label (PyTorch's advice for `pos_weight`).
///
/// A label the file never has keeps weight 1 (no target of it is weighted; it only enters
/// label smoothing). Then checks the weights against the labels.
pub fn resolve_balanced_weights(
    task: &mut TaskSpec,
    source: &DataSource,
    train: &Path,
) -> Result<()> {
    let balanced = |w: &Option<LossWeights>| matches!(w, Some(LossWeights::Balanced));
    if !balanced(&task.class_weights) && !balanced(&task.pos_weight) {
        return task.check_loss_weights();
    }
    let labels = task.labels.clone().unwrap_or_default();
    let k = labels.len();
    let records = read_records(task, source, train)?;
    // counts[c]: examples or words of class c (class weights), examples having c (positive)
    let mut counts = vec![0usize; k];
    let mut samples = 0usize;
    for r in &records {
        let value = label_value(task, &r.label);
        let names = task.kind.label_names(&value).map_err(|expected| {
            anyhow!(
                "{}:{}: task '{}': expected {expected}",
                train.display(),
                r.line,
                task.name
            )
        })?;
        let mut seen = BTreeSet::new();
        for name in names {
            let name = name
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| name.to_string());
            if let Some(c) = labels.iter().position(|l| *l == name) {
                if balanced(&task.pos_weight) {
                    seen.insert(c);
                } else {
                    counts[c] += 1;
                    samples += 1;
                }
            }
        }
        for c in seen {
            counts[c] += 1;
        }
    }
    if balanced(&task.class_weights) {
        let weights = counts
            .iter()
            .map(|&n| if n == 0 { 1.0 } else { samples as f64 / (k as f64 * n as f64) } as f32)
            .collect();
        task.class_weights = Some(LossWeights::PerLabel(weights));
    }
    if balanced(&task.pos_weight) {
        let n = records.len();
        let weights = counts
            .iter()
            .map(|&pos| if pos == 0 { 1.0 } else { (n - pos) as f64 / pos as f64 } as f32)
            .collect();
        task.pos_weight = Some(LossWeights::PerLabel(weights));
    }
    task.check_loss_weights()
        .map_err(|e| anyhow!("{}: {e}", train.display()))
}

/// [`resolve_balanced_weights`] for every task; a `"balanced"` task without a training file
/// is an error.
pub fn resolve_all_balanced_weights(tasks: &mut [TaskSpec], sources: &[DataSource]) -> Result<()> {
    for (task, source) in tasks.iter_mut().zip(sources) {
        match &source.train {
            Some(train) => resolve_balanced_weights(task, source, train)?,
            None => {
                for (key, w) in [
                    ("class_weights", &task.class_weights),
                    ("pos_weight", &task.pos_weight),
                ] {
                    if matches!(w, Some(LossWeights::Balanced)) {
                        bail!(
                            "task '{}': `{key}` = \"balanced\" counts the labels of a `train` file; \
                             give the task one or list the weights",
                            task.name
                        );
                    }
                }
                task.check_loss_weights()?;
            }
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::TaskKind;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn source(train: &Path) -> DataSource {
        DataSource {
            train: Some(train.to_path_buf()),
            ..Default::default()
        }
    }

    fn weights(w: &Option<LossWeights>) -> Vec<f32> {
        match w {
            Some(LossWeights::PerLabel(ws)) => ws.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn balanced_weights_follow_scikit_learn_and_pytorch() {
        let dir = tempfile::tempdir().unwrap();
        // 6 examples: 1 a, 3 b, 2 c, and a label "d" that never occurs.
        let csv = write(
            dir.path(),
            "c.csv",
            "text,label\nx,a\nx,b\nx,b\nx,b\nx,c\nx,c\n",
        );
        let mut task = TaskSpec::new("t", TaskKind::CLASSIFICATION);
        task.labels = Some(["a", "b", "c", "d"].map(String::from).to_vec());
        task.class_weights = Some(LossWeights::Balanced);
        resolve_balanced_weights(&mut task, &source(&csv), &csv).unwrap();
        // n / (k * n_c) with k = 4 labels: 6/4, 6/12, 6/8; d keeps 1
        assert_eq!(weights(&task.class_weights), [1.5, 0.5, 0.75, 1.0]);

        // Token classification counts words: 5 O, 3 B.
        let tags = write(
            dir.path(),
            "t.jsonl",
            "{\"text\": \"a b c d\", \"label\": [\"O\", \"B\", \"O\", \"O\"]}\n\
             {\"text\": \"e f g h\", \"label\": [\"B\", \"O\", \"B\", \"O\"]}\n",
        );
        let mut task = TaskSpec::new("t", TaskKind::TOKEN_CLASSIFICATION);
        task.labels = Some(["B", "O"].map(String::from).to_vec());
        task.class_weights = Some(LossWeights::Balanced);
        resolve_balanced_weights(&mut task, &source(&tags), &tags).unwrap();
        assert_eq!(weights(&task.class_weights), [8.0 / 6.0, 8.0 / 10.0]);

        // Multilabel: n_negative / n_positive per label over 4 examples.
        let multi = write(
            dir.path(),
            "m.jsonl",
            "{\"text\": \"a\", \"label\": [\"x\"]}\n{\"text\": \"b\", \"label\": [\"x\", \"y\"]}\n\
             {\"text\": \"c\", \"label\": [\"x\", \"x\"]}\n{\"text\": \"d\", \"label\": []}\n",
        );
        let mut task = TaskSpec::new("t", TaskKind::MULTILABEL);
        task.labels = Some(["x", "y", "z"].map(String::from).to_vec());
        task.pos_weight = Some(LossWeights::Balanced);
        resolve_balanced_weights(&mut task, &source(&multi), &multi).unwrap();
        assert_eq!(weights(&task.pos_weight), [1.0 / 3.0, 3.0, 1.0]);

        // Without a training file "balanced" cannot be resolved.
        let mut tasks = vec![task.clone()];
        tasks[0].pos_weight = Some(LossWeights::Balanced);
        let e = resolve_all_balanced_weights(&mut tasks, &[DataSource::default()]).unwrap_err();
        assert!(
            format!("{e:#}").contains("counts the labels of a `train` file"),
            "{e:#}"
        );
    }
}
