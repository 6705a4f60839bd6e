//! Batched inference: the logits (and optionally the mean gate value per token) of every task
//! for a batch, read back in one transfer, and their decoding into predictions; generation
//! tasks' text, decoded by their decoders (`MultiTaskModel::generate`) and detokenized.

use anyhow::Result;

use super::generate::Special;
use super::multitask::{GenerateSettings, MultiTaskModel};
use crate::data::{Batch, Example};
use crate::gpu::Tensor;
use crate::nn::DeviceBatch;
use crate::nn::Mode;
pub use crate::tasks::Prediction;
use crate::tasks::RowOutputs;
use crate::tasks::TaskSpec;
use crate::tokenize::{TextTokenizer, WordSplit};

/// What inference produces beside the predictions.
#[derive(Clone, Copy, Debug, Default)]
pub struct InferOptions {
    /// Each task's gate averaged over features, per token.
    pub with_gates: bool,
    /// Generation tasks: this many beams instead of the task's `generate.beam`.
    pub beam: Option<usize>,
}

/// One task's outputs for a batch, on the host.
pub struct TaskOutputs {
    /// `[B, width]` (sequence tasks) or `[B * T, width]` (token tasks).
    pub logits: Vec<f32>,
    pub width: usize,
    /// `[B * T]`: the task's gate averaged over features, when asked for and the task has one.
    pub gate: Option<Vec<f32>>,
    /// Generation tasks: per row, the generated texts with their scores, best first.
    pub texts: Option<Vec<Vec<(String, f64)>>>,
}

/// [`infer_async`], blocking until the outputs are read back (native only).
#[cfg(not(target_arch = "wasm32"))]
pub fn infer(
    model: &MultiTaskModel,
    tokenizer: &TextTokenizer,
    batch: &Batch,
    run: Option<&[bool]>,
    options: InferOptions,
) -> Result<Vec<Option<TaskOutputs>>> {
    let gpu = model.params().gpu().clone();
    gpu.block_on(infer_async(model, tokenizer, batch, run, options))?
}

/// How task `task` decodes: its `generate` settings, the beam overridden by `options`.
pub fn generate_settings(
    task: &TaskSpec,
    tokenizer: &TextTokenizer,
    options: InferOptions,
) -> Result<GenerateSettings> {
    let config = task.generate.clone().unwrap_or_default();
    let (bos, eos) = tokenizer.start_end_ids()?;
    Ok(GenerateSettings {
        beam: options.beam.unwrap_or(config.beam).max(1),
        length_penalty: config.length_penalty,
        max_new_tokens: config.max_new_tokens.unwrap_or(usize::MAX),
        special: Special {
            bos,
            eos,
            pad: tokenizer.pad_id(),
        },
    })
}

/// Runs the tasks marked in `run` (all when `None`) on `batch` without dropout, awaiting
/// the readback (never blocks: the browser's path).
pub async fn infer_async(
    model: &MultiTaskModel,
    tokenizer: &TextTokenizer,
    batch: &Batch,
    run: Option<&[bool]>,
    options: InferOptions,
) -> Result<Vec<Option<TaskOutputs>>> {
    let gpu = model.params().gpu().clone();
    let mut batch = batch.clone();
    // Inference never teacher-forces: generation tasks decode from their memory instead.
    for (targets, task) in batch.targets.iter_mut().zip(&model.spec.tasks) {
        if task.kind.generates_text() {
            *targets = crate::data::TaskTargets::Sequences {
                inputs: Vec::new(),
                labels: Vec::new(),
                seq: 0,
            };
        }
    }
    let device_batch = DeviceBatch::new(&gpu, &batch, &model.spec.encoder, false)?;
    let pass = model.forward(&device_batch, Mode::Infer, run)?;
    let mut tensors: Vec<Tensor> = Vec::new();
    let mut slots = Vec::new();
    for (i, tp) in pass.tasks.iter().enumerate() {
        let Some(tp) = tp else {
            slots.push(None);
            continue;
        };
        if !model.spec.tasks[i].kind.generates_text() {
            tensors.push(tp.logits.clone());
        }
        let gate = if options.with_gates {
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
        let task = &model.spec.tasks[i];
        let (logits, texts) = if task.kind.generates_text() {
            let settings = generate_settings(task, tokenizer, options)?;
            let found = model.generate(i, &pass, &device_batch, &settings).await?;
            let texts = found
                .into_iter()
                .map(|hyps| {
                    hyps.into_iter()
                        .map(|h| Ok((tokenizer.decode(&h.tokens)?, h.score)))
                        .collect::<Result<Vec<_>>>()
                })
                .collect::<Result<Vec<_>>>()?;
            (Vec::new(), Some(texts))
        } else {
            (values.next().expect("logits"), None)
        };
        let width = task.output_width();
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
            texts,
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
    if task.kind.generates_text() {
        let texts = out.texts.as_ref().and_then(|t| t.get(row)).cloned();
        return Prediction::Texts(texts.unwrap_or_default());
    }
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
