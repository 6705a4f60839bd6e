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
        self.step += 1;
        let gpu = self.model.params().gpu().clone();
        let spec = &self.model.spec;
        let labelled: Vec<bool> = batch
            .targets
            .iter()
            .map(TaskTargets::any_labelled)
            .collect();
        let device_batch = DeviceBatch::new(&gpu, batch, &spec.encoder, true)?;
        let mode = Mode::Train {
            seed: spec.encoder.seed,
            step: self.step,
        };
        self.model.store.zero_grads();
        let pass = self.model.forward(&device_batch, mode, Some(&labelled))?;
        let losses = self.model.backward(
            &pass,
            &device_batch,
            &batch.targets,
            &self.model.store.grads,
            mode,
        )?;
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
            total: losses.total,
            per_task: losses.per_task,
            clip,
        })
    }
}
