//! A task kind defined here, through the `Kind` trait alone, registered at run time and
//! trained end to end: `binary`, two named classes predicted by ONE logit with binary
//! cross-entropy (unlike `classification`, whose head has one logit per class). Nothing in
//! taskgate knows this kind: config parsing, label inference, batching, the head's width, the
//! loss, checkpoints, evaluation and prediction all go through the trait.

use std::path::Path;

use anyhow::{Result, bail};
use serde_json::{Value, json};
use taskgate::gpu::{AdapterRequest, Tensor};
use taskgate::metrics::{Metrics, TaskEval, classification};
use taskgate::model::ModelDir;
use taskgate::ops::loss::{GradScale, LossOutput};
use taskgate::tasks::TaskSpec;
use taskgate::tasks::classification::Classification;
use taskgate::tasks::multilabel::Multilabel;
use taskgate::tasks::{
    self, Kind, Label, LabelNames, Level, Prediction, RowOutputs, TargetRow, TaskTargets,
    dense_targets, sigmoid,
};
use taskgate::train::run::{RunOptions, run};

/// Two classes, the second predicted when the one logit is positive. What it shares with the
/// built-in kinds it borrows from them through the same trait.
struct Binary;

impl Kind for Binary {
    fn name(&self) -> &'static str {
        "binary"
    }

    fn level(&self) -> Level {
        Level::Sequence
    }

    fn named_outputs(&self) -> bool {
        true
    }

    fn output_width(&self, _: &TaskSpec) -> usize {
        1
    }

    fn label_names<'v>(&self, value: &'v Value) -> Result<Vec<&'v Value>, &'static str> {
        Classification.label_names(value)
    }

    fn label_from_cell(&self, task: &TaskSpec, cell: &str, sep: &str) -> Result<Value, String> {
        Classification.label_from_cell(task, cell, sep)
    }

    /// Exactly two labels (checked when the config is read, and once they are inferred).
    fn check(&self, task: &TaskSpec) -> Result<()> {
        if task.labels.as_ref().is_some_and(|l| l.len() != 2) {
            bail!("task '{}': a binary task has exactly two labels", task.name);
        }
        Ok(())
    }

    fn parse_label(
        &self,
        task: &TaskSpec,
        value: &Value,
        n_words: usize,
        names: &mut LabelNames<'_>,
    ) -> Result<Label> {
        Classification.parse_label(task, value, n_words, names)
    }

    fn targets(&self, _: &TaskSpec, rows: &[TargetRow<'_>], _: usize) -> TaskTargets {
        dense_targets(rows, 1, |label, out| match label {
            Label::Class(c) => {
                out[0] = (*c == 1) as u8 as f32;
                true
            }
            _ => false,
        })
    }

    /// Binary cross-entropy on the one logit, as `multilabel` computes it per label.
    fn loss(
        &self,
        task: &TaskSpec,
        logits: &Tensor,
        targets: &TaskTargets,
        scale: GradScale,
    ) -> Result<LossOutput> {
        Multilabel.loss(task, logits, targets, scale)
    }

    fn decode(&self, row: RowOutputs<'_>) -> Prediction {
        let p = sigmoid(row.logits[0]);
        Prediction::Class((p >= 0.5) as usize, vec![1.0 - p, p])
    }

    fn prediction_json(&self, prediction: &Prediction, name: &dyn Fn(usize) -> String) -> Value {
        match prediction {
            Prediction::Class(k, probs) => json!({ "label": name(*k), "p": probs[1] }),
            _ => Value::Null,
        }
    }

    fn gather(&self, into: &mut TaskEval, gold: &Label, prediction: Prediction, n: usize) {
        Classification.gather(into, gold, prediction, n)
    }

    fn metrics(&self, gathered: &TaskEval, _: &[String], _: usize) -> Metrics {
        let mut m = Metrics::default();
        m.insert("accuracy", classification::accuracy(&gathered.classes));
        m
    }

    fn primary_metric(&self) -> &'static str {
        "accuracy"
    }
}

const TOKENIZER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/parity/tokenizer.json"
);

fn write_task(dir: &Path) -> std::path::PathBuf {
    let positive = ["great", "good", "fun", "loved", "happy"];
    let negative = ["bad", "terrible", "boring", "hated", "sad"];
    let mut jsonl = String::new();
    for subject in ["movie", "film", "plot", "story"] {
        for (p, n) in positive.iter().zip(negative) {
            jsonl.push_str(&format!(
                "{}\n{}\n",
                json!({"text": format!("the {subject} was {p}"), "label": "yes"}),
                json!({"text": format!("the {subject} was {n}"), "label": "no"})
            ));
        }
    }
    std::fs::write(dir.join("train.jsonl"), &jsonl).unwrap();
    std::fs::write(dir.join("dev.jsonl"), &jsonl).unwrap();
    let config = dir.join("binary.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[encoder]
layers = 1
hidden = 16
heads = 2
intermediate = 32
max_positions = 32
tokenizer = "{TOKENIZER}"
dropout = 0.0
seed = 3

[[task]]
name = "liked"
kind = "binary"
train = "train.jsonl"
dev = "dev.jsonl"

[train]
steps = 60
batch_size = 8
lr = 3e-3
eval_every = 60
log_every = 10
seed = 5
"#
        ),
    )
    .unwrap();
    config
}

#[test]
fn a_kind_defined_outside_taskgate_trains_end_to_end() {
    tasks::register(&Binary).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_task(dir.path());
    let out = dir.path().join("run");
    let summary = run(
        &AdapterRequest::default(),
        &RunOptions {
            config: Some(config.clone()),
            out: out.clone(),
            resume: false,
            only: None,
            steps: None,
            progress: false,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(summary.steps, 60);
    let (name, metrics) = &summary.dev[0];
    assert_eq!(name, "liked");
    let accuracy = metrics.get("accuracy").unwrap();
    assert!(
        accuracy >= 0.9,
        "the toy task is learnt: accuracy {accuracy}"
    );

    // The checkpoint names the kind; its head has one output for two inferred labels.
    let model = ModelDir::load(&out.join("last")).unwrap();
    let task = &model.spec.tasks[0];
    assert_eq!(task.kind.name(), "binary");
    assert_eq!(
        task.labels.as_deref(),
        Some(&["no".to_string(), "yes".to_string()][..])
    );
    assert_eq!(model.params["tasks.liked.head.0.weight"].shape, vec![1, 16]);
    let toml = std::fs::read_to_string(out.join("last/taskgate.toml")).unwrap();
    assert!(toml.contains("kind = \"binary\""), "{toml}");

    // The kind's own check runs on the config: three labels are refused, naming the file.
    let three = std::fs::read_to_string(&config).unwrap().replace(
        "kind = \"binary\"",
        "kind = \"binary\"\nlabels = [\"a\", \"b\", \"c\"]",
    );
    let bad = dir.path().join("three.toml");
    std::fs::write(&bad, three).unwrap();
    let err = run(
        &AdapterRequest::default(),
        &RunOptions {
            config: Some(bad),
            out: dir.path().join("never"),
            resume: false,
            only: None,
            steps: None,
            progress: false,
            ..Default::default()
        },
    )
    .err()
    .expect("three labels for a binary task")
    .to_string();
    assert!(
        err.contains("three.toml") && err.contains("exactly two labels"),
        "{err}"
    );
    assert!(!dir.path().join("never").exists(), "nothing written");
}
