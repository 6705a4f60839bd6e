//! `generation`: a target text per example, produced by a decoder over the task's gated
//! encoder output (`nn::decoder`); the loss is the teacher-forced token cross-entropy (mean
//! over target tokens, optional `label_smoothing`), computed by the decoder's tied output
//! projection rather than by [`Kind::loss`]; predictions are generated text (greedy or beam
//! search, `model::generate`); metrics are exact match (primary), BLEU and chrF as sacrebleu
//! computes them (`metrics::generation`).

use anyhow::{Result, bail};
use serde_json::{Value, json};

use super::labels::{Label, LabelNames};
use super::{IGNORE, Kind, Level, Prediction, RowOutputs, TargetRow, TaskTargets};
use crate::gpu::Tensor;
use crate::metrics::{Metrics, TaskEval, generation};
use crate::ops::loss::{GradScale, LossOutput};
use crate::tasks::TaskSpec;

pub struct Generation;

impl Kind for Generation {
    fn name(&self) -> &'static str {
        "generation"
    }

    fn generates_text(&self) -> bool {
        true
    }

    fn level(&self) -> Level {
        Level::Sequence
    }

    fn named_outputs(&self) -> bool {
        false
    }

    fn output_width(&self, _: &TaskSpec) -> usize {
        0
    }

    fn check(&self, task: &TaskSpec) -> Result<()> {
        let name = &task.name;
        if task.outputs.is_some() {
            bail!("task '{name}': a generation task has no `outputs` (its output is text)");
        }
        if task.pooling.is_some() {
            bail!(
                "task '{name}': a generation task has no `pooling` (its decoder reads every token)"
            );
        }
        if !task.head.hidden.is_empty() {
            bail!("task '{name}': a generation task has a `decoder`, not a `head`");
        }
        if let Some(e) = task.label_smoothing
            && !(0.0..1.0).contains(&e)
        {
            bail!("task '{name}': label_smoothing must be in [0, 1), got {e}");
        }
        if let Some(g) = &task.generate {
            if g.beam == 0 {
                bail!("task '{name}': generate.beam must be at least 1");
            }
            if !g.length_penalty.is_finite() {
                bail!("task '{name}': generate.length_penalty must be a finite number");
            }
            if g.max_new_tokens == Some(0) {
                bail!("task '{name}': generate.max_new_tokens must be at least 1");
            }
        }
        if let Some(d) = &task.decoder {
            for (field, value) in [
                ("layers", d.layers),
                ("heads", d.heads),
                ("intermediate", d.intermediate),
                ("max_length", d.max_length),
            ] {
                if value == Some(0) {
                    bail!("task '{name}': decoder.{field} must be at least 1");
                }
            }
        }
        Ok(())
    }

    fn label_names<'v>(&self, _: &'v Value) -> Result<Vec<&'v Value>, &'static str> {
        Err("a target text")
    }

    fn label_from_cell(&self, _: &TaskSpec, cell: &str, _: &str) -> Result<Value, String> {
        Ok(Value::from(cell))
    }

    fn parse_label(
        &self,
        task: &TaskSpec,
        value: &Value,
        _: usize,
        _: &mut LabelNames<'_>,
    ) -> Result<Label> {
        match value.as_str() {
            Some(text) if !text.trim().is_empty() => Ok(Label::Text {
                text: text.to_string(),
                tokens: Vec::new(),
            }),
            Some(_) => bail!("task '{}': the target text is empty", task.name),
            None => bail!("task '{}': expected a target text, got {value}", task.name),
        }
    }

    /// Teacher forcing: inputs `[BOS] t1 .. tn`, labels `t1 .. tn [EOS]`, padded to the
    /// longest target of the batch (inputs with 0, a valid id the labels ignore).
    fn targets(&self, _: &TaskSpec, rows: &[TargetRow<'_>], _: usize) -> TaskTargets {
        let tokens = |r: &TargetRow<'_>| match r.label {
            Some(Label::Text { tokens, .. }) if tokens.len() >= 2 => Some(tokens.clone()),
            _ => None,
        };
        let seq = rows
            .iter()
            .filter_map(tokens)
            .map(|t| t.len() - 1)
            .max()
            .unwrap_or(1);
        let mut inputs = vec![0u32; rows.len() * seq];
        let mut labels = vec![IGNORE; rows.len() * seq];
        for (r, row) in rows.iter().enumerate() {
            if let Some(t) = tokens(row) {
                let n = t.len() - 1;
                inputs[r * seq..r * seq + n].copy_from_slice(&t[..n]);
                for (k, &id) in t[1..].iter().enumerate() {
                    labels[r * seq + k] = id as i32;
                }
            }
        }
        TaskTargets::Sequences {
            inputs,
            labels,
            seq,
        }
    }

    fn loss(
        &self,
        task: &TaskSpec,
        _: &Tensor,
        _: &TaskTargets,
        _: GradScale,
    ) -> Result<LossOutput> {
        bail!(
            "task '{}': a generation task's loss is its decoder's (model::multitask)",
            task.name
        )
    }

    /// Generation tasks are decoded by `model::generate`, not from logits.
    fn decode(&self, _: RowOutputs<'_>) -> Prediction {
        Prediction::Texts(Vec::new())
    }

    fn prediction_json(&self, prediction: &Prediction, _: &dyn Fn(usize) -> String) -> Value {
        match prediction {
            Prediction::Texts(texts) => {
                let best = texts.first().map(|(t, _)| t.clone()).unwrap_or_default();
                if texts.len() > 1 {
                    let beams: Vec<Value> = texts
                        .iter()
                        .map(|(t, s)| json!({ "text": t, "score": s }))
                        .collect();
                    json!({ "text": best, "beams": beams })
                } else {
                    json!({ "text": best })
                }
            }
            _ => Value::Null,
        }
    }

    fn gather(&self, into: &mut TaskEval, gold: &Label, prediction: Prediction, _: usize) {
        if let (Label::Text { text, .. }, Prediction::Texts(texts)) = (gold, prediction) {
            let best = texts.into_iter().next().map(|(t, _)| t).unwrap_or_default();
            into.texts.push((best, text.clone()));
        }
    }

    fn metrics(&self, gathered: &TaskEval, _: &[String], _: usize) -> Metrics {
        generation::generation_metrics(&gathered.texts)
    }

    fn primary_metric(&self) -> &'static str {
        "exact_match"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::TaskKind;

    fn text(tokens: &[u32]) -> Label {
        Label::Text {
            text: String::new(),
            tokens: tokens.to_vec(),
        }
    }

    /// Teacher forcing shifts each target by one, pads to the longest and ignores the rest
    /// (and every position of an unlabelled row).
    #[test]
    fn targets_shift_pad_and_ignore() {
        let task = TaskSpec::new("g", TaskKind::GENERATION);
        let (a, b) = (text(&[101, 7, 8, 9, 102]), text(&[101, 5, 102]));
        let rows = [&a, &b]
            .iter()
            .map(|l| TargetRow {
                label: Some(l),
                word_starts: &[],
            })
            .chain([TargetRow {
                label: None,
                word_starts: &[],
            }])
            .collect::<Vec<_>>();
        let TaskTargets::Sequences {
            inputs,
            labels,
            seq,
        } = Generation.targets(&task, &rows, 99)
        else {
            panic!("sequences");
        };
        assert_eq!(seq, 4);
        assert_eq!(inputs, [101, 7, 8, 9, 101, 5, 0, 0, 0, 0, 0, 0]);
        let x = IGNORE;
        assert_eq!(labels, [7, 8, 9, 102, 5, 102, x, x, x, x, x, x]);
    }

    #[test]
    fn bad_settings_are_refused() {
        let mut task = TaskSpec::new("g", TaskKind::GENERATION);
        task.label_smoothing = Some(1.0);
        assert!(
            Generation
                .check(&task)
                .unwrap_err()
                .to_string()
                .contains("label_smoothing")
        );
        task.label_smoothing = Some(0.1);
        task.generate = Some(crate::config::GenerateConfig {
            beam: 0,
            ..Default::default()
        });
        assert!(
            Generation
                .check(&task)
                .unwrap_err()
                .to_string()
                .contains("beam")
        );
        task.generate = None;
        assert!(Generation.check(&task).is_ok());
        let label = Generation
            .parse_label(
                &task,
                &serde_json::json!(3),
                0,
                &mut LabelNames { unseen: None },
            )
            .unwrap_err();
        assert!(label.to_string().contains("expected a target text"));
    }
}
