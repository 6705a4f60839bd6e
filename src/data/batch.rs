//! Collating examples into a padded batch with per-task targets in the layouts the loss
//! kernels take (each task's kind lays out its own).

use super::jsonl::Example;
pub use crate::tasks::{IGNORE, TaskTargets};
use crate::tasks::{TargetRow, TaskSpec};

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
pub fn collate(examples: &[Example], tasks: &[TaskSpec], pad_id: u32) -> Batch {
    collate_padded(examples, tasks, pad_id, 1)
}

/// [`collate`], padded to at least `min_seq` tokens (a data-parallel rank's rows padded as
/// the whole batch is).
pub fn collate_padded(
    examples: &[Example],
    tasks: &[TaskSpec],
    pad_id: u32,
    min_seq: usize,
) -> Batch {
    let b = examples.len();
    let t = examples
        .iter()
        .map(|e| e.encoded.ids.len())
        .max()
        .unwrap_or(0)
        .max(min_seq)
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
        .map(|(ti, task)| {
            let rows: Vec<TargetRow<'_>> = examples
                .iter()
                .map(|e| TargetRow {
                    label: e.labels[ti].as_ref(),
                    word_starts: &e.encoded.word_starts,
                })
                .collect();
            task.kind.targets(task, &rows, t)
        })
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
