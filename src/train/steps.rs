//! The core of every training loop, shared by `taskgate train` (`train::run`) and the
//! browser page's engine ([`crate::session`]): the trainer built from a `[train]`
//! configuration, the batches the task sampler draws, a step that records its work without
//! waiting for the GPU, the steps' statistics read back (awaited, never blocking) when the
//! caller asks for them, and the one divergence check: a NaN or Inf loss stops training.

use anyhow::{Result, bail};

use super::freeze::ParamPlan;
use super::optimizer::Optimizer;
use super::schedule::LrSchedule;
use super::trainer::{ShardPlan, StepOutput, StepStats, TrainOptions, Trainer};
use super::weighting::Weighter;
use crate::config::{Mixing, TrainConfig};
use crate::data::sampler::Sampler;
use crate::data::{Batch, Example, collate, collate_padded};
use crate::dist::shard_rows;
use crate::model::{ModelSpec, MultiTaskModel};
use crate::ops::adamw::AdamW;
use crate::tasks::LossWeightKey;
use crate::tasks::TaskSpec;

/// The optimizer settings of `config` for a run of `total_steps` steps.
pub fn train_options(config: &TrainConfig, total_steps: u64) -> TrainOptions {
    TrainOptions {
        schedule: LrSchedule {
            peak: config.lr,
            warmup: config.warmup_steps(total_steps),
            total: total_steps,
            decay: config.decay,
        },
        adamw: AdamW {
            lr: config.lr,
            weight_decay: config.weight_decay,
            ..AdamW::default()
        },
        clip: config.clip,
    }
}

/// A trainer at step 0 for `model` with the optimizer settings and the weighting of
/// `config` (see [`train_options`]; one sampler epoch is `steps_per_epoch` steps). When the
/// optimizer cannot be set up, the model comes back with the error (the page keeps it for
/// predictions).
pub fn build_trainer(
    model: MultiTaskModel,
    config: &TrainConfig,
    total_steps: u64,
    steps_per_epoch: u64,
) -> std::result::Result<Trainer, (anyhow::Error, Box<MultiTaskModel>)> {
    let options = train_options(config, total_steps);
    trainer_with_options(model, config, options, steps_per_epoch)
}

/// [`build_trainer`] with the optimizer settings given (the benchmarks' own): `config`
/// still gives the freezing, the layer decay and the weighting.
pub fn trainer_with_options(
    mut model: MultiTaskModel,
    config: &TrainConfig,
    options: TrainOptions,
    steps_per_epoch: u64,
) -> std::result::Result<Trainer, (anyhow::Error, Box<MultiTaskModel>)> {
    let weighter = Weighter::new(config, model.spec.tasks.len(), steps_per_epoch);
    let optimizer = param_plan(config, &model.spec).and_then(|plan| {
        model.frozen_below = plan.frozen_below;
        Optimizer::with_plan(&model.store, options.adamw, options.clip, &plan)
    });
    match optimizer {
        Ok(optimizer) => Ok(Trainer::with_parts(model, optimizer, options, weighter)),
        Err(e) => Err((e, Box::new(model))),
    }
}

/// What `config`'s `freeze` and `layer_lr_decay` make of `model`'s parameters; a freeze that
/// leaves nothing to train, or the whole encoder under a method that combines the tasks'
/// encoder gradients, is an error.
pub fn param_plan(config: &TrainConfig, spec: &ModelSpec) -> Result<ParamPlan> {
    let specs = spec.param_specs();
    let plan = ParamPlan::resolve(
        &specs,
        spec.encoder.layers,
        &config.freeze,
        config.layer_lr_decay,
    )?;
    if specs.iter().all(|s| plan.is_frozen(&s.name)) {
        bail!("[train] freeze covers every parameter of the model: nothing would train");
    }
    if plan.encoder_frozen() && config.weighting.uses_task_gradients() {
        bail!(
            "[train] weighting = \"{}\" combines the tasks' gradients on the encoder, but \
             freeze covers the whole encoder: unfreeze part of it, or use a loss weighting",
            config.weighting.name()
        );
    }
    Ok(plan)
}

/// The training examples of every task and the sampler that draws each step's task and
/// batch from them.
pub struct Batches {
    pub sampler: Sampler,
    /// Per task: its training examples (none for a task without a training file).
    pools: Vec<Vec<Example>>,
    pad_id: u32,
}

impl Batches {
    /// Batches from `pools` as `config`'s sampler settings say (kind, temperature, seed and
    /// batch size); `pad_id` pads the shorter examples of a batch.
    pub fn new(config: &TrainConfig, pools: Vec<Vec<Example>>, pad_id: u32) -> Self {
        let lengths = pools
            .iter()
            .map(|pool| pool.iter().map(|e| e.encoded.ids.len()).collect())
            .collect();
        let sampler = Sampler::new(
            config.sampler,
            config.temperature,
            config.seed,
            config.batch_size,
            lengths,
        )
        .with_mixing(config.mixing);
        Self {
            sampler,
            pools,
            pad_id,
        }
    }
}

/// A step taken: the tasks of its batches (one, or every task) and their real (non-padding)
/// tokens.
#[derive(Clone, Debug)]
pub struct StepTaken {
    pub tasks: Vec<usize>,
    pub tokens: u64,
}

/// A step's statistics, read back, with the tasks its batches came from.
#[derive(Clone, Debug)]
pub struct StepRead {
    pub tasks: Vec<usize>,
    pub stats: StepStats,
}

/// The step loop: a trainer, its batches, and the steps whose statistics are still on the
/// GPU.
pub struct Steps {
    pub trainer: Trainer,
    pub batches: Batches,
    pending: Vec<(Vec<usize>, StepOutput)>,
}

impl Steps {
    pub fn new(trainer: Trainer, batches: Batches) -> Self {
        Self {
            trainer,
            batches,
            pending: Vec::new(),
        }
    }

    /// One step on the sampler's next batches (one, or one per task, batch k training only
    /// its task: `[train] mixing`). Unless the weighting reads back mid-step, the host does
    /// not wait for the GPU: the step's statistics stay pending until [`Steps::read`].
    pub async fn step(&mut self) -> Result<StepTaken> {
        let drawn = self.batches.sampler.next_step();
        let specs = &self.trainer.model.spec.tasks;
        let examples: Vec<Vec<Example>> = drawn
            .iter()
            .map(|(task, indices)| {
                indices
                    .iter()
                    .map(|&i| self.batches.pools[*task][i].clone())
                    .collect()
            })
            .collect();
        let batches: Vec<Batch> = examples
            .iter()
            .map(|e| collate(e, specs, self.batches.pad_id))
            .collect();
        let tokens = batches
            .iter()
            .flat_map(|b| &b.attention)
            .map(|&a| a as u64)
            .sum::<u64>();
        let tasks: Vec<usize> = drawn.iter().map(|(task, _)| *task).collect();
        let own_tasks = (self.batches.sampler.mixing() == Mixing::AllTasks).then_some(&tasks[..]);
        let output = if self.trainer.comm.size() > 1 {
            let (local, plan) = self.shard(&examples, &batches, own_tasks)?;
            self.trainer
                .train_shard_async(&local, own_tasks, &plan)
                .await?
        } else {
            self.trainer
                .train_batches_async(&batches, own_tasks)
                .await?
        };
        self.pending.push((tasks.clone(), output));
        Ok(StepTaken { tasks, tokens })
    }

    /// This rank's rows of the step's global batches (`examples`, collated as `global`),
    /// padded to the global batches' lengths, and their shares of the global losses.
    fn shard(
        &self,
        examples: &[Vec<Example>],
        global: &[Batch],
        own_tasks: Option<&[usize]>,
    ) -> Result<(Vec<Batch>, ShardPlan)> {
        let comm = &self.trainer.comm;
        let specs = &self.trainer.model.spec.tasks;
        let class_weights = specs
            .iter()
            .map(|t| t.loss_weight_vector(LossWeightKey::ClassWeights))
            .collect::<Result<Vec<_>>>()?;
        let mut plan = ShardPlan {
            shares: Vec::with_capacity(global.len()),
            labelled: vec![false; specs.len()],
        };
        let mut local = Vec::with_capacity(global.len());
        for (k, (rows, whole)) in examples.iter().zip(global).enumerate() {
            let mine = &rows[shard_rows(rows.len(), comm.rank(), comm.size())];
            let part = collate_padded(mine, specs, self.batches.pad_id, whole.seq);
            let mut shares = vec![0.0; specs.len()];
            for (t, share) in shares.iter_mut().enumerate() {
                if own_tasks.is_some_and(|own| own[k] != t) {
                    continue;
                }
                let w = class_weights[t].as_deref();
                // (labelled as one process decides: a batch of zero-weight classes still
                // steps the task's optimizer group)
                plan.labelled[t] |= whole.targets[t].any_labelled();
                let all = whole.targets[t].loss_denominator(w);
                if all > 0.0 {
                    *share = part.targets[t].loss_denominator(w) / all;
                }
            }
            plan.shares.push(shares);
            local.push(part);
        }
        Ok((local, plan))
    }

    /// Reads the statistics of the steps taken since the last read, oldest first (awaiting
    /// the GPU, one readback each). A NaN or Inf loss is an error (see [`check_divergence`],
    /// at the current step; `advice` ends its message). After an error, the steps not read
    /// yet are dropped.
    pub async fn read(&mut self, advice: &str) -> Result<Vec<StepRead>> {
        let step = self.trainer.step;
        let mut read = Vec::with_capacity(self.pending.len());
        for (tasks, output) in std::mem::take(&mut self.pending) {
            let stats = output.read_async().await?;
            check_divergence(
                step,
                &self.trainer.model.spec.tasks,
                &stats.task_losses,
                advice,
            )?;
            read.push(StepRead { tasks, stats });
        }
        Ok(read)
    }

    /// The model, when training ends (steps still pending are dropped).
    pub fn into_model(self) -> MultiTaskModel {
        self.trainer.model
    }
}

/// Divergence: the first task whose loss (`losses`, one per task, `None` where the batch had
/// no labels for it) is NaN or Inf stops training with an error naming the step and the
/// task, then `advice`.
pub fn check_divergence(
    step: u64,
    tasks: &[TaskSpec],
    losses: &[Option<f32>],
    advice: &str,
) -> Result<()> {
    for (task, loss) in tasks.iter().zip(losses) {
        if let Some(loss) = loss
            && !loss.is_finite()
        {
            bail!(
                "training diverged at step {step}: task '{}' loss is {loss}; {advice}",
                task.name
            );
        }
    }
    Ok(())
}
