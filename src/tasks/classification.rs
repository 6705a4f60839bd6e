//! `classification`: one class per example, softmax cross-entropy over the class logits;
//! accuracy (primary), macro-F1 and MCC.

use anyhow::{Result, bail};
use serde_json::{Value, json};

use super::labels::{Label, LabelNames};
use super::{
    IGNORE, Kind, Level, LossWeightKey, Prediction, RowOutputs, TargetRow, TaskTargets, argmax,
    scores_json, softmax,
};
use crate::gpu::Tensor;
use crate::metrics::{Metrics, TaskEval, classification};
use crate::ops::loss::{CrossEntropyOptions, GradScale, LossOutput, cross_entropy};
use crate::tasks::TaskSpec;

pub struct Classification;

/// Softmax cross-entropy of each row of `logits` against its class in `targets` ([`IGNORE`]:
/// none), weighted by the task's `class_weights`, d(logits) times `scale` (classes per
/// example, or per token).
pub fn class_cross_entropy(
    task: &TaskSpec,
    logits: &Tensor,
    targets: &[i32],
    scale: GradScale,
) -> Result<LossOutput> {
    cross_entropy(
        logits,
        targets,
        &CrossEntropyOptions {
            class_weights: task.loss_weight_vector(LossWeightKey::ClassWeights)?,
            grad_scale: scale.factor,
            task_weight: scale.task_weight,
            ..Default::default()
        },
    )
}

impl Kind for Classification {
    fn name(&self) -> &'static str {
        "classification"
    }

    fn level(&self) -> Level {
        Level::Sequence
    }

    fn named_outputs(&self) -> bool {
        true
    }

    fn label_names<'v>(&self, value: &'v Value) -> Result<Vec<&'v Value>, &'static str> {
        Ok(vec![value])
    }

    fn label_from_cell(&self, _: &TaskSpec, cell: &str, _: &str) -> Result<Value, String> {
        Ok(Value::from(cell))
    }

    fn parse_label(
        &self,
        task: &TaskSpec,
        value: &Value,
        _: usize,
        names: &mut LabelNames<'_>,
    ) -> Result<Label> {
        let Some(name) = value.as_str() else {
            bail!("task '{}': expected a label name, got {value}", task.name);
        };
        Ok(Label::Class(names.index(task, name)?))
    }

    fn targets(&self, _: &TaskSpec, rows: &[TargetRow<'_>], _: usize) -> TaskTargets {
        TaskTargets::Classes(
            rows.iter()
                .map(|r| match r.label {
                    Some(Label::Class(c)) => *c as i32,
                    _ => IGNORE,
                })
                .collect(),
        )
    }

    fn loss_weights(&self) -> Option<LossWeightKey> {
        Some(LossWeightKey::ClassWeights)
    }

    fn loss(
        &self,
        task: &TaskSpec,
        logits: &Tensor,
        targets: &TaskTargets,
        scale: GradScale,
    ) -> Result<LossOutput> {
        let TaskTargets::Classes(t) = targets else {
            bail!("classification targets must be one class per row");
        };
        class_cross_entropy(task, logits, t, scale)
    }

    fn decode(&self, row: RowOutputs<'_>) -> Prediction {
        Prediction::Class(argmax(row.logits), softmax(row.logits))
    }

    fn prediction_json(&self, prediction: &Prediction, name: &dyn Fn(usize) -> String) -> Value {
        match prediction {
            Prediction::Class(k, probs) => {
                json!({ "label": name(*k), "scores": scores_json(probs, name) })
            }
            _ => Value::Null,
        }
    }

    fn gather(&self, into: &mut TaskEval, gold: &Label, prediction: Prediction, _: usize) {
        if let (Label::Class(gold), Prediction::Class(p, _)) = (gold, prediction) {
            into.classes.push((p, *gold));
        }
    }

    fn metrics(&self, gathered: &TaskEval, labels: &[String], _: usize) -> Metrics {
        let k = labels.len().max(1);
        let mut m = Metrics::default();
        m.insert("accuracy", classification::accuracy(&gathered.classes));
        m.insert("macro_f1", classification::macro_f1(&gathered.classes, k));
        m.insert("mcc", classification::mcc(&gathered.classes, k));
        m
    }

    fn primary_metric(&self) -> &'static str {
        "accuracy"
    }
}
