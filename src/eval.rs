//! Evaluation of a model on a split of each task's data: batched inference, decoding, and the
//! metrics of [`crate::metrics`].

use anyhow::Result;

use crate::data::splits::EvalSet;
use crate::data::{Example, collate};
use crate::metrics::{Metrics, TaskEval};
use crate::model::MultiTaskModel;
use crate::model::infer::{InferOptions, decode, infer};
use crate::tokenize::TextTokenizer;

/// Examples per inference batch.
pub const EVAL_BATCH: usize = 32;

/// Metrics of task `task_index` on `set` (examples labelled for that task). Gold labels the
/// model cannot output (unseen in training) count as errors.
pub fn evaluate_task(
    model: &MultiTaskModel,
    task_index: usize,
    set: &EvalSet,
    tokenizer: &TextTokenizer,
) -> Result<Metrics> {
    let pad_id = tokenizer.pad_id();
    let examples = &set.examples;
    let task = &model.spec.tasks[task_index];
    let labels = set.label_names(task);
    let mut run = vec![false; model.spec.tasks.len()];
    run[task_index] = true;
    // Sorted by length so batches pad little; metrics do not depend on the order.
    let mut order: Vec<usize> = (0..examples.len()).collect();
    order.sort_by_key(|&i| examples[i].encoded.ids.len());
    let mut gathered = TaskEval::default();
    for chunk in order.chunks(EVAL_BATCH) {
        let batch_examples: Vec<Example> = chunk.iter().map(|&i| examples[i].clone()).collect();
        let batch = collate(&batch_examples, &model.spec.tasks, pad_id);
        let outputs = infer(
            model,
            tokenizer,
            &batch,
            Some(&run),
            InferOptions::default(),
        )?;
        let out = outputs[task_index].as_ref().expect("the task was run");
        for (row, example) in batch_examples.iter().enumerate() {
            let prediction = decode(task, out, batch.seq, row, example, None);
            if let Some(gold) = &example.labels[task_index] {
                task.kind
                    .gather(&mut gathered, gold, prediction, labels.len());
            }
        }
    }
    let known = task.labels.as_deref().unwrap_or(&[]).len();
    let mut metrics = task.kind.metrics(&gathered, &labels, known);
    metrics.insert("examples", gathered.len() as f64);
    Ok(metrics)
}
