//! `multilabel`: any subset of the labels per example, one sigmoid per label with binary
//! cross-entropy; micro-F1 (primary) and macro-F1 at probability 0.5.

use anyhow::{Result, bail};
use serde_json::{Value, json};

use super::labels::{Label, LabelNames, list_items, string_list};
use super::{
    Kind, Level, Prediction, RowOutputs, TargetRow, TaskTargets, dense_targets, scores_json,
    sigmoid,
};
use crate::gpu::Tensor;
use crate::metrics::{Metrics, TaskEval, classification};
use crate::ops::loss::{GradScale, LossOutput, bce_with_logits_weighted};
use crate::tasks::TaskSpec;

pub struct Multilabel;

impl Kind for Multilabel {
    fn name(&self) -> &'static str {
        "multilabel"
    }

    fn level(&self) -> Level {
        Level::Sequence
    }

    fn named_outputs(&self) -> bool {
        true
    }

    fn label_names<'v>(&self, value: &'v Value) -> Result<Vec<&'v Value>, &'static str> {
        list_items(value, "a list of label names")
    }

    fn label_from_cell(&self, _: &TaskSpec, cell: &str, separator: &str) -> Result<Value, String> {
        Ok(Value::from(
            cell.split(separator)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>(),
        ))
    }

    fn parse_label(
        &self,
        task: &TaskSpec,
        value: &Value,
        _: usize,
        names: &mut LabelNames<'_>,
    ) -> Result<Label> {
        let mut classes = string_list(task, value, "label names")?
            .into_iter()
            .map(|n| names.index(task, n))
            .collect::<Result<Vec<_>>>()?;
        classes.sort_unstable();
        classes.dedup();
        Ok(Label::Classes(classes))
    }

    fn targets(&self, task: &TaskSpec, rows: &[TargetRow<'_>], _: usize) -> TaskTargets {
        dense_targets(rows, task.output_width(), |label, out| match label {
            Label::Classes(classes) => {
                // (labels past the set occur only in evaluation files, which train nothing)
                let width = out.len();
                for &c in classes.iter().filter(|&&c| c < width) {
                    out[c] = 1.0;
                }
                true
            }
            _ => false,
        })
    }

    fn loss_weights(&self) -> Option<super::LossWeightKey> {
        Some(super::LossWeightKey::PosWeight)
    }

    fn loss(
        &self,
        task: &TaskSpec,
        logits: &Tensor,
        targets: &TaskTargets,
        scale: GradScale,
    ) -> Result<LossOutput> {
        let TaskTargets::Dense { targets, mask } = targets else {
            bail!("multilabel targets must be dense");
        };
        let pos_weight = task.loss_weight_vector(super::LossWeightKey::PosWeight)?;
        bce_with_logits_weighted(logits, targets, mask, pos_weight.as_deref(), scale)
    }

    fn decode(&self, row: RowOutputs<'_>) -> Prediction {
        Prediction::Labels(row.logits.iter().map(|&x| sigmoid(x)).collect())
    }

    fn prediction_json(&self, prediction: &Prediction, name: &dyn Fn(usize) -> String) -> Value {
        match prediction {
            Prediction::Labels(probs) => json!({
                "labels": probs.iter().enumerate().filter(|(_, p)| **p >= 0.5).map(|(j, _)| name(j)).collect::<Vec<_>>(),
                "scores": scores_json(probs, name)
            }),
            _ => Value::Null,
        }
    }

    fn gather(&self, into: &mut TaskEval, gold: &Label, prediction: Prediction, n_labels: usize) {
        if let (Label::Classes(gold), Prediction::Labels(probs)) = (gold, prediction) {
            let mut predicted: Vec<bool> = probs.iter().map(|&p| p >= 0.5).collect();
            predicted.resize(n_labels, false);
            let mut truth = vec![false; n_labels];
            for &g in gold {
                truth[g] = true;
            }
            into.sets.push((predicted, truth));
        }
    }

    fn metrics(&self, gathered: &TaskEval, _: &[String], _: usize) -> Metrics {
        let (micro, macro_) = classification::multilabel_f1(&gathered.sets);
        let mut m = Metrics::default();
        m.insert("micro_f1", micro);
        m.insert("macro_f1", macro_);
        m
    }

    fn primary_metric(&self) -> &'static str {
        "micro_f1"
    }
}
