//! Batched inference: the logits (and optionally the mean gate value per token) of every task
//! for a batch, read back in one transfer, and their decoding into predictions.

use anyhow::Result;

use super::multitask::MultiTaskModel;
use crate::data::{Batch, Example};
use crate::gpu::Tensor;
use crate::nn::DeviceBatch;
use crate::nn::Mode;
pub use crate::tasks::Prediction;
use crate::tasks::RowOutputs;
use crate::tasks::TaskSpec;
use crate::tokenize::WordSplit;

/// One task's outputs for a batch, on the host.
pub struct TaskOutputs {
    /// `[B, width]` (sequence tasks) or `[B * T, width]` (token tasks).
    pub logits: Vec<f32>,
    pub width: usize,
    /// `[B * T]`: the task's gate averaged over features, when asked for and the task has one.
    pub gate: Option<Vec<f32>>,
}

/// [`infer_async`], blocking until the outputs are read back (native only).
#[cfg(not(target_arch = "wasm32"))]
pub fn infer(
    model: &MultiTaskModel,
    batch: &Batch,
    run: Option<&[bool]>,
    with_gates: bool,
) -> Result<Vec<Option<TaskOutputs>>> {
    let gpu = model.params().gpu().clone();
    gpu.block_on(infer_async(model, batch, run, with_gates))?
}

/// Runs the tasks marked in `run` (all when `None`) on `batch` without dropout, awaiting
/// the readback (never blocks: the browser's path).
pub async fn infer_async(
    model: &MultiTaskModel,
    batch: &Batch,
    run: Option<&[bool]>,
    with_gates: bool,
) -> Result<Vec<Option<TaskOutputs>>> {
    let gpu = model.params().gpu().clone();
    let device_batch = DeviceBatch::new(&gpu, batch, &model.spec.encoder, false)?;
    let pass = model.forward(&device_batch, Mode::Infer, run)?;
    let mut tensors: Vec<Tensor> = Vec::new();
    let mut slots = Vec::new();
    for (i, tp) in pass.tasks.iter().enumerate() {
        let Some(tp) = tp else {
            slots.push(None);
            continue;
        };
        tensors.push(tp.logits.clone());
        let gate = if with_gates {
            model.tasks[i].gate.values(&tp.gate)?
        } else {
            None
        };
        let has_gate = gate.is_some();
        if let Some(g) = gate {
            tensors.push(g);
        }
        slots.push(Some(has_gate));
    }
    let refs: Vec<&Tensor> = tensors.iter().collect();
    let mut values = gpu.read_f32(&refs).await?.into_iter();
    let tokens = batch.batch * batch.seq;
    let mut out = Vec::with_capacity(slots.len());
    for (i, slot) in slots.into_iter().enumerate() {
        let Some(has_gate) = slot else {
            out.push(None);
            continue;
        };
        let logits = values.next().expect("logits");
        let width = model.spec.tasks[i].output_width();
        let gate = has_gate.then(|| {
            let gate = values.next().expect("gate");
            let per_token = (gate.len() / tokens).max(1);
            gate.chunks(per_token)
                .map(|c| c.iter().sum::<f32>() / per_token as f32)
                .collect()
        });
        out.push(Some(TaskOutputs {
            logits,
            width,
            gate,
        }));
    }
    Ok(out)
}

/// Decodes row `row` of a batch whose examples are `examples` (in batch order). Token tasks
/// tag the words of `split` (raw text: the task's own split), or the example's whitespace
/// words when `None` (data files, whose labels are per whitespace word).
pub fn decode(
    task: &TaskSpec,
    out: &TaskOutputs,
    seq: usize,
    row: usize,
    example: &Example,
    split: Option<WordSplit>,
) -> Prediction {
    let w = out.width;
    if task.kind.is_sequence_level() {
        return task.kind.decode(RowOutputs {
            logits: &out.logits[row * w..(row + 1) * w],
            width: w,
            words: &[],
            word_starts: &[],
        });
    }
    let (words, starts) = example
        .encoded
        .words(&example.text, split.unwrap_or(WordSplit::Whitespace));
    task.kind.decode(RowOutputs {
        logits: &out.logits[row * seq * w..(row + 1) * seq * w],
        width: w,
        words: &words,
        word_starts: &starts,
    })
}
