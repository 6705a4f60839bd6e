//! Evaluation of a model on a split of each task's data: batched inference, decoding, and the
//! metrics of [`crate::metrics`].

use anyhow::{Context, Result};

use crate::data::splits::EvalSet;
use crate::data::{Example, collate};
use crate::dist::{Collective, Single};
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
    evaluate_task_on(model, task_index, set, tokenizer, &Single)
}

/// [`evaluate_task`] shared by the ranks of a data-parallel job: rank r runs batches r,
/// r + N, ... of the one-process order, every rank receives every rank's predictions and
/// puts them back in that order, so every rank computes the metrics one process would.
pub fn evaluate_task_on(
    model: &MultiTaskModel,
    task_index: usize,
    set: &EvalSet,
    tokenizer: &TextTokenizer,
    comm: &dyn Collective,
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
    let (rank, size) = (comm.rank(), comm.size());
    // This rank's batches' predictions, each with its batch's index.
    let mut mine: Vec<(usize, TaskEval)> = Vec::new();
    for (index, chunk) in order.chunks(EVAL_BATCH).enumerate() {
        if index % size != rank {
            continue;
        }
        let mut gathered = TaskEval::default();
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
        mine.push((index, gathered));
    }
    let gathered = gather_in_order(mine, comm)?;
    let known = task.labels.as_deref().unwrap_or(&[]).len();
    let mut metrics = task.kind.metrics(&gathered, &labels, known);
    metrics.insert("examples", gathered.len() as f64);
    Ok(metrics)
}

/// One batch's predictions between ranks: its index, the predictions with the regression
/// values taken out, and those values as their bits.
type WireBatch = (usize, TaskEval, Vec<(u64, u64)>);

/// Batches of predictions as bytes for another rank; regression values travel as their
/// bits, since JSON has no NaN or Inf.
fn to_wire(batches: Vec<(usize, TaskEval)>) -> Result<Vec<u8>> {
    let wire: Vec<WireBatch> = batches
        .into_iter()
        .map(|(index, mut eval)| {
            let bits = std::mem::take(&mut eval.values)
                .iter()
                .map(|(p, g)| (p.to_bits(), g.to_bits()))
                .collect();
            (index, eval, bits)
        })
        .collect();
    Ok(serde_json::to_vec(&wire)?)
}

/// [`to_wire`]'s bytes back as batches of predictions.
fn from_wire(bytes: &[u8]) -> Result<Vec<(usize, TaskEval)>> {
    let wire: Vec<WireBatch> = serde_json::from_slice(bytes)?;
    Ok(wire
        .into_iter()
        .map(|(index, mut eval, bits)| {
            eval.values = bits
                .iter()
                .map(|&(p, g)| (f64::from_bits(p), f64::from_bits(g)))
                .collect();
            (index, eval)
        })
        .collect())
}

/// Every rank's `(batch index, predictions)` on every rank (each rank broadcasts its own in
/// turn), merged in batch order.
fn gather_in_order(mine: Vec<(usize, TaskEval)>, comm: &dyn Collective) -> Result<TaskEval> {
    let mut all = if comm.size() == 1 {
        mine
    } else {
        let own = to_wire(mine)?;
        let mut all = Vec::new();
        for root in 0..comm.size() {
            let mut bytes = if root == comm.rank() {
                own.clone()
            } else {
                Vec::new()
            };
            comm.broadcast_bytes(root, &mut bytes)?;
            all.extend(
                from_wire(&bytes)
                    .with_context(|| format!("the predictions rank {root} sent do not parse"))?,
            );
        }
        all
    };
    all.sort_by_key(|(index, _)| *index);
    let mut merged = TaskEval::default();
    for (_, part) in all {
        merged.append(part);
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predictions_cross_ranks_bit_for_bit_with_nan_and_infinity() {
        let eval = TaskEval {
            classes: vec![(1, 2)],
            values: vec![
                (f64::NAN, 0.5),
                (f64::INFINITY, f64::NEG_INFINITY),
                (-0.0, 1e-300),
            ],
            texts: vec![("a".into(), "b".into())],
            ..TaskEval::default()
        };
        let sent = vec![(7, eval.clone())];
        let got = from_wire(&to_wire(sent).unwrap()).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, 7);
        assert_eq!(got[0].1.classes, eval.classes);
        assert_eq!(got[0].1.texts, eval.texts);
        let bits = |v: &[(f64, f64)]| -> Vec<(u64, u64)> {
            v.iter().map(|(p, g)| (p.to_bits(), g.to_bits())).collect()
        };
        assert_eq!(bits(&got[0].1.values), bits(&eval.values));
        assert!(from_wire(b"not json").is_err());
    }
}
