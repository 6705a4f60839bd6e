//! One training step at a time: upload the batch, forward with dropout, backward through
//! every labelled task into the shared encoder, AdamW with clipping. The step's losses and
//! gradient norm stay on the GPU until [`StepOutput::read_async`] asks for them.

use anyhow::Result;

use super::optimizer::Optimizer;
use super::schedule::LrSchedule;
use crate::data::{Batch, TaskTargets};
use crate::gpu::Tensor;
use crate::model::MultiTaskModel;
use crate::model::spec::Owner;
use crate::nn::DeviceBatch;
use crate::nn::Mode;
use crate::ops::adamw::AdamW;
use crate::ops::elementwise::accumulate;

/// Optimizer settings of a run.
#[derive(Clone, Copy, Debug)]
pub struct TrainOptions {
    pub schedule: LrSchedule,
    pub adamw: AdamW,
    /// Global gradient-norm clip (0 disables).
    pub clip: f32,
}

pub struct Trainer {
    pub model: MultiTaskModel,
    pub optimizer: Optimizer,
    pub options: TrainOptions,
    /// Steps taken so far.
    pub step: u64,
}

/// A step's results, still on the GPU.
pub struct StepOutput {
    pub lr: f32,
    total: Tensor,
    per_task: Vec<Option<Tensor>>,
    clip: Tensor,
}

/// A step's scalars, read back.
#[derive(Clone, Debug)]
pub struct StepStats {
    pub lr: f32,
    pub loss: f32,
    /// `None` for tasks without labels in the batch.
    pub task_losses: Vec<Option<f32>>,
    pub grad_norm: f32,
    /// True when the gradient norm was NaN or Inf and the update was skipped.
    pub skipped: bool,
}

impl StepOutput {
    /// Reads the losses and the gradient norm (one small readback), awaiting the device.
    pub async fn read_async(&self) -> Result<StepStats> {
        let mut tensors = vec![&self.total, &self.clip];
        tensors.extend(self.per_task.iter().flatten());
        let values = self.total.gpu().read_f32(&tensors).await?;
        let mut rest = values[2..].iter();
        Ok(StepStats {
            lr: self.lr,
            loss: values[0][0],
            task_losses: self
                .per_task
                .iter()
                .map(|t| {
                    t.as_ref()
                        .map(|_| rest.next().expect("one value per task")[0])
                })
                .collect(),
            grad_norm: values[1][0],
            skipped: values[1][2] != 0.0,
        })
    }

    /// [`StepOutput::read_async`], blocking (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read(&self) -> Result<StepStats> {
        self.total.gpu().block_on(self.read_async())?
    }
}

impl Trainer {
    pub fn new(model: MultiTaskModel, options: TrainOptions) -> Result<Self> {
        let optimizer = Optimizer::new(&model.store, options.adamw, options.clip)?;
        Ok(Self {
            model,
            optimizer,
            options,
            step: 0,
        })
    }

    /// One step on `batch`. Tasks without labels in it run no head and are not updated.
    pub fn train_step(&mut self, batch: &Batch) -> Result<StepOutput> {
        self.train_batches(std::slice::from_ref(batch))
    }

    /// One optimizer step on `batches` (one per task with `mixing = "all_tasks"`): each
    /// batch's forward and backward add their gradients into the step's gradient set, then
    /// one AdamW step. The step's loss of a task sums the batches that label it. Batch `k`'s
    /// dropout masks come from its own seed (batch 0 keeps the model's: a one-batch step is
    /// exactly [`Trainer::train_step`]).
    pub fn train_batches(&mut self, batches: &[Batch]) -> Result<StepOutput> {
        if batches.is_empty() {
            anyhow::bail!("a training step needs at least one batch");
        }
        self.step += 1;
        let gpu = self.model.params().gpu().clone();
        let tasks = self.model.spec.tasks.len();
        let mut labelled = vec![false; tasks];
        let mut total: Option<Tensor> = None;
        let mut per_task: Vec<Option<Tensor>> = vec![None; tasks];
        let add = |sum: Option<Tensor>, x: Tensor| -> Result<Tensor> {
            match sum {
                None => Ok(x),
                Some(sum) => {
                    accumulate(&sum, &x, 1.0)?;
                    Ok(sum)
                }
            }
        };
        for (k, batch) in batches.iter().enumerate() {
            let spec = &self.model.spec;
            let run: Vec<bool> = batch
                .targets
                .iter()
                .map(TaskTargets::any_labelled)
                .collect();
            let device_batch = DeviceBatch::new(&gpu, batch, &spec.encoder, true)?;
            let mode = Mode::Train {
                seed: batch_seed(spec.encoder.seed, k),
                step: self.step,
            };
            if k == 0 {
                self.model.store.zero_grads();
            }
            let pass = self.model.forward(&device_batch, mode, Some(&run))?;
            let losses = self.model.backward(
                &pass,
                &device_batch,
                &batch.targets,
                &self.model.store.grads,
                mode,
            )?;
            total = Some(add(total, losses.total)?);
            for (t, loss) in losses.per_task.into_iter().enumerate() {
                if let Some(loss) = loss {
                    per_task[t] = Some(add(per_task[t].take(), loss)?);
                    labelled[t] = true;
                }
            }
        }
        let lr = self.options.schedule.lr(self.step);
        let any = labelled.iter().any(|&l| l);
        let clip = self
            .optimizer
            .step(&self.model.store, lr, |owner| match owner {
                Owner::Encoder => any,
                Owner::Task(i) => labelled[i],
            })?;
        Ok(StepOutput {
            lr,
            total: total.expect("at least one batch"),
            per_task,
            clip,
        })
    }
}

/// The dropout seed of a step's batch `k`: the model's for the first, a distinct one for each
/// other (so the batches of one step do not share masks).
fn batch_seed(seed: u64, k: usize) -> u64 {
    seed ^ (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}
