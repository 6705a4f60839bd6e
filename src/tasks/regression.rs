//! `regression`: `outputs` real values per example (default 1), mean squared error;
//! Pearson (primary), Spearman and MSE over all outputs.

use anyhow::{Result, bail};
use serde_json::{Value, json};

use super::labels::{Label, LabelNames};
use super::{Kind, Level, Prediction, RowOutputs, TargetRow, TaskTargets, dense_targets};
use crate::gpu::Tensor;
use crate::metrics::{Metrics, TaskEval, regression};
use crate::ops::loss::{GradScale, LossOutput, mse};
use crate::tasks::TaskSpec;

pub struct Regression;

/// A regression label: a number or a list of `outputs` finite numbers (shared by kinds that
/// predict values).
pub fn parse_values(task: &TaskSpec, value: &Value) -> Result<Label> {
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
    Ok(Label::Values(values))
}

/// A CSV/TSV cell of `separator`-separated numbers as a JSON label.
pub fn values_from_cell(task: &TaskSpec, cell: &str, separator: &str) -> Result<Value, String> {
    let values: Result<Vec<f64>, _> = cell
        .split(separator)
        .map(|v| v.trim().parse::<f64>())
        .collect();
    match values {
        Ok(v) if v.iter().any(|x| !x.is_finite()) => Err(format!(
            "task '{}': label '{cell}' is not a finite number (regression targets must be \
             finite: fix or remove the row)",
            task.name
        )),
        Ok(v) if v.len() == 1 => Ok(Value::from(v[0])),
        Ok(v) => Ok(Value::from(v)),
        Err(_) => Err(format!(
            "task '{}': label '{cell}' is not a number (regression)",
            task.name
        )),
    }
}

/// `[B, outputs]` value targets.
pub fn value_targets(task: &TaskSpec, rows: &[TargetRow<'_>]) -> TaskTargets {
    dense_targets(rows, task.output_width(), |label, out| match label {
        Label::Values(values) => {
            out.copy_from_slice(values);
            true
        }
        _ => false,
    })
}

impl Kind for Regression {
    fn name(&self) -> &'static str {
        "regression"
    }

    fn level(&self) -> Level {
        Level::Sequence
    }

    fn named_outputs(&self) -> bool {
        false
    }

    fn label_names<'v>(&self, _: &'v Value) -> Result<Vec<&'v Value>, &'static str> {
        Err("numbers (regression has no label names)")
    }

    fn label_from_cell(
        &self,
        task: &TaskSpec,
        cell: &str,
        separator: &str,
    ) -> Result<Value, String> {
        values_from_cell(task, cell, separator)
    }

    fn parse_label(
        &self,
        task: &TaskSpec,
        value: &Value,
        _: usize,
        _: &mut LabelNames<'_>,
    ) -> Result<Label> {
        parse_values(task, value)
    }

    fn targets(&self, task: &TaskSpec, rows: &[TargetRow<'_>], _: usize) -> TaskTargets {
        value_targets(task, rows)
    }

    fn loss(
        &self,
        _: &TaskSpec,
        logits: &Tensor,
        targets: &TaskTargets,
        scale: GradScale,
    ) -> Result<LossOutput> {
        let TaskTargets::Dense { targets, mask } = targets else {
            bail!("regression targets must be dense");
        };
        mse(logits, targets, mask, scale)
    }

    fn decode(&self, row: RowOutputs<'_>) -> Prediction {
        Prediction::Values(row.logits.to_vec())
    }

    fn prediction_json(&self, prediction: &Prediction, _: &dyn Fn(usize) -> String) -> Value {
        match prediction {
            Prediction::Values(v) => json!({ "values": v }),
            _ => Value::Null,
        }
    }

    fn gather(&self, into: &mut TaskEval, gold: &Label, prediction: Prediction, _: usize) {
        if let (Label::Values(gold), Prediction::Values(v)) = (gold, prediction) {
            into.values
                .extend(v.iter().zip(gold).map(|(&p, &g)| (p as f64, g as f64)));
        }
    }

    fn metrics(&self, gathered: &TaskEval, _: &[String], _: usize) -> Metrics {
        value_metrics(gathered)
    }

    fn primary_metric(&self) -> &'static str {
        "pearson"
    }
}

/// Pearson, Spearman and MSE over every gathered value.
pub fn value_metrics(gathered: &TaskEval) -> Metrics {
    let mut m = Metrics::default();
    m.insert("pearson", regression::pearson(&gathered.values));
    m.insert("spearman", regression::spearman(&gathered.values));
    m.insert("mse", regression::mse(&gathered.values));
    m
}
