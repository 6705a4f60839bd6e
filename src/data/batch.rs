//! Collating examples into a padded batch with per-task targets in the layouts the loss
//! kernels take.

use super::jsonl::Example;
use super::labels::Label;
use crate::config::{TaskConfig, TaskKind};

/// Targets of one task for a batch.
#[derive(Clone, Debug, PartialEq)]
pub enum TaskTargets {
    /// Class per row, -100 where unlabelled (classification).
    Classes(Vec<i32>),
    /// Tag per token (`[B * T]`), -100 where unlabelled (token classification).
    Tokens(Vec<i32>),
    /// `[B, outputs]` targets and a per-row mask, 1 where labelled (multilabel, regression).
    Dense { targets: Vec<f32>, mask: Vec<f32> },
}

impl TaskTargets {
    /// True when at least one row or token carries a label.
    pub fn any_labelled(&self) -> bool {
        match self {
            TaskTargets::Classes(t) | TaskTargets::Tokens(t) => t.iter().any(|&v| v != IGNORE),
            TaskTargets::Dense { mask, .. } => mask.iter().any(|&m| m != 0.0),
        }
    }
}

/// PyTorch's default ignore index.
pub const IGNORE: i32 = -100;

/// A padded batch on the host.
#[derive(Clone, Debug)]
pub struct Batch {
    pub batch: usize,
    pub seq: usize,
    /// `[B * T]` token ids, padded with the tokenizer's pad id.
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
    /// `[B * T]`: 1 for real tokens, 0 for padding.
    pub attention: Vec<u32>,
    /// The tokenizer's padding id (its embedding row gets no gradient, as in BERT).
    pub pad_id: u32,
    /// One entry per task, in config order.
    pub targets: Vec<TaskTargets>,
}

/// Pads `examples` to the longest and lays out every task's targets.
pub fn collate(examples: &[Example], tasks: &[TaskConfig], pad_id: u32) -> Batch {
    let b = examples.len();
    let t = examples
        .iter()
        .map(|e| e.encoded.ids.len())
        .max()
        .unwrap_or(0)
        .max(1);
    let mut ids = vec![pad_id; b * t];
    let mut type_ids = vec![0; b * t];
    let mut attention = vec![0; b * t];
    for (row, e) in examples.iter().enumerate() {
        let n = e.encoded.ids.len();
        ids[row * t..row * t + n].copy_from_slice(&e.encoded.ids);
        type_ids[row * t..row * t + n].copy_from_slice(&e.encoded.type_ids);
        attention[row * t..row * t + n].fill(1);
    }
    let targets = tasks
        .iter()
        .enumerate()
        .map(|(ti, task)| task_targets(examples, ti, task, t))
        .collect();
    Batch {
        batch: b,
        seq: t,
        ids,
        type_ids,
        attention,
        pad_id,
        targets,
    }
}

fn task_targets(examples: &[Example], ti: usize, task: &TaskConfig, t: usize) -> TaskTargets {
    let b = examples.len();
    match task.kind {
        TaskKind::Classification => TaskTargets::Classes(
            examples
                .iter()
                .map(|e| match &e.labels[ti] {
                    Some(Label::Class(c)) => *c as i32,
                    _ => IGNORE,
                })
                .collect(),
        ),
        TaskKind::TokenClassification => {
            let mut tags = vec![IGNORE; b * t];
            for (row, e) in examples.iter().enumerate() {
                if let Some(Label::Tags(word_tags)) = &e.labels[ti] {
                    for (pos, word) in e.encoded.word_starts.iter().enumerate() {
                        if let Some(w) = word {
                            tags[row * t + pos] = word_tags[*w] as i32;
                        }
                    }
                }
            }
            TaskTargets::Tokens(tags)
        }
        TaskKind::Multilabel | TaskKind::Regression => {
            let width = task.output_width();
            let mut targets = vec![0.0; b * width];
            let mut mask = vec![0.0; b];
            for (row, e) in examples.iter().enumerate() {
                let out = &mut targets[row * width..(row + 1) * width];
                match &e.labels[ti] {
                    Some(Label::Classes(classes)) => {
                        // (labels past the set occur only in evaluation files, which train
                        // nothing)
                        for &c in classes.iter().filter(|&&c| c < width) {
                            out[c] = 1.0;
                        }
                        mask[row] = 1.0;
                    }
                    Some(Label::Values(values)) => {
                        out.copy_from_slice(values);
                        mask[row] = 1.0;
                    }
                    _ => {}
                }
            }
            TaskTargets::Dense { targets, mask }
        }
    }
}
