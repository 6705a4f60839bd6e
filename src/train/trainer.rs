//! One training step at a time: upload the batches, forward with dropout, backward through
//! every labelled task into the shared encoder, the tasks combined as the run's
//! [`Weighter`] says, AdamW with clipping. With task weights known before the step (static,
//! equal, rlw, dwa, uncertainty) the step's losses and gradient norm stay on the GPU until
//! [`StepOutput::read_async`] asks for them; `uncertainty` and `dwa` read the step's losses
//! back, and the task-gradient methods read the losses and the tasks' Gram matrix mid-step
//! (awaited: the browser never blocks).

use anyhow::{Result, bail};

use super::optimizer::Optimizer;
use super::schedule::LrSchedule;
use super::weighting::{StepPlan, Weighter, methods};
use crate::config::{TrainConfig, Weighting};
use crate::data::Batch;
use crate::dist::{Comm, single};
use crate::gpu::PendingRead;
use crate::gpu::Tensor;
use crate::model::MultiTaskModel;
use crate::model::multitask::{ForwardPass, HiddenGrads};
use crate::model::spec::Owner;
use crate::nn::DeviceBatch;
use crate::nn::Mode;
use crate::nn::encoder::encoder_stage;
use crate::nn::params::ArenaSet;
use crate::ops::adamw::AdamW;
use crate::ops::elementwise::accumulate;
use crate::ops::reduce::dot;

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
    /// How the tasks of a step combine (`[train] weighting`).
    pub weighter: Weighter,
    /// One gradient set per task, for the methods that combine task gradients (made at
    /// their first step).
    task_grads: Vec<ArenaSet>,
    /// The ranks of a data-parallel job (one process: rank 0 of 1).
    pub comm: Comm,
    /// What the gradient sums across ranks cost so far.
    pub reduce_stats: ReduceStats,
    /// The trained gradient spans `(arena, start, end)` of a data-parallel step, in buckets
    /// in the order the backward finishes them (made at the first such step).
    grad_buckets: Vec<Vec<(usize, usize, usize)>>,
}

/// A data-parallel rank's part of one step: for each of its (local) batches and each task,
/// the share of the global batch's loss denominator its rows hold (see
/// [`crate::tasks::TaskTargets::loss_denominator`]), and which tasks any rank's rows label.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ShardPlan {
    pub shares: Vec<Vec<f64>>,
    pub labelled: Vec<bool>,
}

/// The gradient sums of a data-parallel run so far.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReduceStats {
    pub steps: u64,
    /// Bytes each rank sent into the sums (gradients, losses).
    pub bytes: u64,
    /// Seconds spent waiting for the gradients to be read back (waiting for the backward
    /// of their stage included).
    pub readback_s: f64,
    /// Seconds in the MPI sums (waiting for the other ranks included) and the upload.
    pub reduce_s: f64,
}

/// The step's total loss: on the GPU, or computed on the host from losses read mid-step.
enum Total {
    Gpu(Tensor),
    Host(f32),
}

/// A step's results, still on the GPU.
pub struct StepOutput {
    pub lr: f32,
    total: Total,
    per_task: Vec<Option<Tensor>>,
    clip: Tensor,
    /// The task weights (or gradient coefficients) the step used.
    pub weights: Vec<f32>,
    /// Pairwise cosines of the task gradients (gradient methods only), upper triangle.
    pub cosines: Option<Vec<f32>>,
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
    /// The task weights (or, for gradient methods, the coefficients of the tasks' gradients
    /// on the shared encoder) of the step.
    pub weights: Vec<f32>,
    /// Pairwise cosine similarities of the task gradients (gradient methods), pairs
    /// `(0,1), (0,2), ..., (K-2,K-1)`.
    pub cosines: Option<Vec<f32>>,
}

impl StepOutput {
    /// Reads the losses and the gradient norm (one small readback), awaiting the device.
    pub async fn read_async(&self) -> Result<StepStats> {
        let mut tensors = vec![&self.clip];
        if let Total::Gpu(total) = &self.total {
            tensors.push(total);
        }
        tensors.extend(self.per_task.iter().flatten());
        let values = self.clip.gpu().read_f32(&tensors).await?;
        let (loss, rest) = match self.total {
            Total::Gpu(_) => (values[1][0], &values[2..]),
            Total::Host(loss) => (loss, &values[1..]),
        };
        let mut rest = rest.iter();
        Ok(StepStats {
            lr: self.lr,
            loss,
            task_losses: self
                .per_task
                .iter()
                .map(|t| {
                    t.as_ref()
                        .map(|_| rest.next().expect("one value per task")[0])
                })
                .collect(),
            grad_norm: values[0][0],
            skipped: values[0][2] != 0.0,
            weights: self.weights.clone(),
            cosines: self.cosines.clone(),
        })
    }

    /// [`StepOutput::read_async`], blocking (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read(&self) -> Result<StepStats> {
        self.clip.gpu().block_on(self.read_async())?
    }
}

impl Trainer {
    /// A trainer with the model's own task weights (`static` weighting).
    pub fn new(model: MultiTaskModel, options: TrainOptions) -> Result<Self> {
        let optimizer = Optimizer::new(&model.store, options.adamw, options.clip)?;
        let weighter = Weighter::new(&TrainConfig::default(), model.spec.tasks.len(), 1);
        Ok(Self::with_parts(model, optimizer, options, weighter))
    }

    /// A trainer at step 0 from its parts.
    pub fn with_parts(
        model: MultiTaskModel,
        optimizer: Optimizer,
        options: TrainOptions,
        weighter: Weighter,
    ) -> Self {
        Self {
            model,
            optimizer,
            options,
            step: 0,
            weighter,
            task_grads: Vec::new(),
            comm: single(),
            reduce_stats: ReduceStats::default(),
            grad_buckets: Vec::new(),
        }
    }

    /// One step on `batch`. Tasks without labels in it run no head and are not updated.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn train_step(&mut self, batch: &Batch) -> Result<StepOutput> {
        self.train_batches(std::slice::from_ref(batch))
    }

    /// [`Trainer::train_batches_async`] where each batch trains every task it labels
    /// (blocking only where the weighting reads back mid-step; native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn train_batches(&mut self, batches: &[Batch]) -> Result<StepOutput> {
        let gpu = self.model.params().gpu().clone();
        gpu.block_on(self.train_batches_async(batches, None))?
    }

    /// One optimizer step on `batches` (one per task with `mixing = "all_tasks"`, batch `k`
    /// training only task `own_tasks[k]` when given, else every task it labels): each
    /// batch's forward and backward add their gradients into the step's gradient set (or,
    /// for the task-gradient methods, into its task's own set, combined afterwards), then one
    /// AdamW step. The step's loss of a task sums the batches that train it. Batch `k`'s
    /// dropout masks come from its own seed (batch 0 keeps the model's: a one-batch step is
    /// exactly [`Trainer::train_step`]).
    pub async fn train_batches_async(
        &mut self,
        batches: &[Batch],
        own_tasks: Option<&[usize]>,
    ) -> Result<StepOutput> {
        if self.comm.size() > 1 {
            bail!("a data-parallel rank trains through Trainer::train_shard_async");
        }
        if batches.is_empty() {
            bail!("a training step needs at least one batch");
        }
        if own_tasks.is_some_and(|t| t.len() != batches.len()) {
            bail!("one task per batch");
        }
        self.step += 1;
        let tasks = self.model.spec.tasks.len();
        let plan = self.weighter.plan(self.step);
        let lr = self.options.schedule.lr(self.step);
        let separate = plan == StepPlan::TaskGradients;
        if matches!(plan, StepPlan::WeightsFromLosses | StepPlan::TaskGradients) {
            let own = own_tasks.unwrap_or_default();
            let mut sorted = own.to_vec();
            sorted.sort_unstable();
            if sorted != (0..tasks).collect::<Vec<_>>() {
                bail!(
                    "weighting \"{}\" needs one batch of every task in each step ([train] \
                     mixing = \"all_tasks\", every task with training data)",
                    self.weighter.method.name()
                );
            }
        }
        match &plan {
            StepPlan::Fixed => {}
            StepPlan::Weights(w) => {
                let w: Vec<f32> = w.iter().map(|&x| x as f32).collect();
                self.model.set_task_weights(&w)?;
            }
            StepPlan::WeightsFromLosses => {
                let own = own_tasks.unwrap_or_default();
                return self.step_weighted_by_losses(batches, own, lr).await;
            }
            StepPlan::TaskGradients => {
                // Each task's own set holds its unweighted gradient.
                self.model.set_task_weights(&vec![1.0; tasks])?;
                while self.task_grads.len() < tasks {
                    self.task_grads.push(self.model.store.grads.zeros_like()?);
                }
            }
        }
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
        if !separate {
            self.model.store.zero_grads();
        }
        for (k, batch) in batches.iter().enumerate() {
            let own = own_tasks.map(|t| t[k]);
            let (device_batch, pass, mode) = self.forward_batch(k, batch, own)?;
            let grads = match own {
                Some(t) if separate => {
                    self.task_grads[t].zero();
                    &self.task_grads[t]
                }
                _ => &self.model.store.grads,
            };
            let losses = self
                .model
                .backward(&pass, &device_batch, &batch.targets, grads, mode)?;
            total = Some(add(total, losses.total)?);
            for (t, loss) in losses.per_task.into_iter().enumerate() {
                if let Some(loss) = loss {
                    per_task[t] = Some(add(per_task[t].take(), loss)?);
                    labelled[t] = true;
                }
            }
        }
        let total = total.expect("at least one batch");
        let (total, weights, cosines) = match plan {
            StepPlan::TaskGradients => {
                let combined = self.combine_task_gradients(&per_task, lr).await?;
                (Total::Host(combined.0), combined.1, Some(combined.2))
            }
            plan => {
                let weights = match plan {
                    StepPlan::Weights(w) => w.iter().map(|&x| x as f32).collect(),
                    _ => self.model.spec.tasks.iter().map(|t| t.lambda).collect(),
                };
                if self.weighter.observes_losses() {
                    let losses = read_losses(&per_task).await?;
                    self.weighter.observe(&losses, lr as f64);
                }
                (Total::Gpu(total), weights, None)
            }
        };
        self.finish_step(lr, total, per_task, &labelled, weights, cosines)
    }

    /// One optimizer step of a data-parallel rank: `batches` are its rows of the step's
    /// global batches (see [`crate::dist::shard_rows`]), `plan` their shares of the global
    /// losses. Each task's d(logits) is scaled by its weight times the share, so that the
    /// ranks' gradients sum to the gradient of the global batch's mean losses; the
    /// gradients of the trained parameters and the scaled losses are read back, summed
    /// across the ranks (bit-identical everywhere) and written back, then every rank clips
    /// and steps identically. Only weightings whose task weights are known before the step
    /// are supported ([`crate::config::Weighting::weights_before_step`]).
    pub async fn train_shard_async(
        &mut self,
        batches: &[Batch],
        own_tasks: Option<&[usize]>,
        plan: &ShardPlan,
    ) -> Result<StepOutput> {
        let tasks = self.model.spec.tasks.len();
        if plan.shares.len() != batches.len()
            || plan.shares.iter().any(|s| s.len() != tasks)
            || plan.labelled.len() != tasks
            || own_tasks.is_some_and(|t| t.len() != batches.len())
        {
            bail!("a shard plan needs one share per batch and task");
        }
        self.step += 1;
        let lr = self.options.schedule.lr(self.step);
        let weights: Vec<f32> = match self.weighter.plan(self.step) {
            StepPlan::Fixed => self.model.spec.tasks.iter().map(|t| t.lambda).collect(),
            StepPlan::Weights(w) => w.iter().map(|&x| x as f32).collect(),
            _ => bail!(
                "weighting \"{}\" reads the losses or the task gradients within a step, \
                 which data-parallel training does not support yet: use static, equal, rlw, \
                 dwa or uncertainty",
                self.weighter.method.name()
            ),
        };
        self.model.store.zero_grads();
        if self.grad_buckets.is_empty() {
            self.grad_buckets = self.gradient_buckets();
        }
        let grads = self.model.store.grads.clone();
        let gpu = grads.gpu().clone();
        let views = self
            .grad_buckets
            .iter()
            .map(|spans| {
                spans
                    .iter()
                    .map(|&(arena, start, end)| grads.arenas[arena].view(start, &[end - start]))
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        let layers = self.model.spec.encoder.layers;
        // Each bucket's readback starts once the backward of the step's last batch has
        // recorded its stage, so that the lower stages run on the GPU meanwhile.
        let mut reads: Vec<Option<PendingRead>> = views.iter().map(|_| None).collect();
        let last = batches.iter().rposition(|b| b.batch > 0);
        // (task, share, loss) of every task each batch trained.
        let mut losses: Vec<(usize, f64, Tensor)> = Vec::new();
        for (k, batch) in batches.iter().enumerate() {
            if batch.batch == 0 {
                continue; // no rows here: zero gradients into the sum
            }
            let scaled: Vec<f32> = weights
                .iter()
                .zip(&plan.shares[k])
                .map(|(&w, &share)| (w as f64 * share) as f32)
                .collect();
            self.model.set_task_weights(&scaled)?;
            let own = own_tasks.map(|t| t[k]);
            let (device_batch, pass, mode) = self.forward_batch(k, batch, own)?;
            let mut done = |stage: Option<usize>| -> Result<()> {
                let b = bucket_of(stage, layers);
                if Some(k) == last && reads[b].is_none() && !views[b].is_empty() {
                    reads[b] = Some(gpu.begin_read(&views[b].iter().collect::<Vec<_>>())?);
                }
                Ok(())
            };
            let out = self.model.backward_reporting(
                &pass,
                &device_batch,
                &batch.targets,
                &self.model.store.grads,
                mode,
                &mut done,
            )?;
            for (t, loss) in out.per_task.into_iter().enumerate() {
                if let Some(loss) = loss {
                    losses.push((t, plan.shares[k][t], loss));
                }
            }
        }
        self.model.set_task_weights(&weights)?;
        let per_task = self.sum_across_ranks(&views, reads, &losses).await?;
        let total: f64 = per_task
            .iter()
            .zip(&weights)
            .map(|(l, &w)| l * w as f64)
            .sum();
        if self.weighter.observes_losses() {
            self.weighter.observe(&per_task, lr as f64);
        }
        let gpu = self.model.params().gpu().clone();
        let per_task = per_task
            .iter()
            .zip(&plan.labelled)
            .map(|(&l, &labelled)| {
                labelled
                    .then(|| Tensor::from_slice(&gpu, &[l as f32], &[1]))
                    .transpose()
            })
            .collect::<Result<Vec<_>>>()?;
        self.finish_step(
            lr,
            Total::Host(total as f32),
            per_task,
            &plan.labelled,
            weights,
            None,
        )
    }

    /// Sums the gradients of the trained parameters (`views`, bucket by bucket, each read
    /// back by its pending read or now) and each task's share-scaled losses over the
    /// ranks, writing the sums back; the sum of a bucket runs while the GPU still computes
    /// the stages of the buckets after it. Returns each task's loss on the global batch.
    async fn sum_across_ranks(
        &mut self,
        views: &[Vec<Tensor>],
        mut reads: Vec<Option<PendingRead>>,
        losses: &[(usize, f64, Tensor)],
    ) -> Result<Vec<f64>> {
        let tasks = self.model.spec.tasks.len();
        let gpu = self.model.store.grads.gpu().clone();
        let (mut read_s, mut reduce_s, mut elements) = (0.0, 0.0, 0usize);
        for (bucket, read) in views.iter().zip(&mut reads) {
            if bucket.is_empty() {
                continue;
            }
            let started = std::time::Instant::now();
            let tensors: Vec<&Tensor> = bucket.iter().collect();
            let read = match read.take() {
                Some(read) => read,
                None => gpu.begin_read(&tensors)?,
            };
            let mut flat = read.finish_in_order_f32(&tensors).await?.concat();
            let summing = std::time::Instant::now();
            read_s += (summing - started).as_secs_f64();
            self.comm.all_reduce_sum(&mut flat)?;
            let mut at = 0;
            for view in bucket {
                view.write(&flat[at..at + view.numel()])?;
                at += view.numel();
            }
            elements += flat.len();
            reduce_s += summing.elapsed().as_secs_f64();
        }
        let started = std::time::Instant::now();
        let loss_tensors: Vec<&Tensor> = losses.iter().map(|(_, _, l)| l).collect();
        let values = gpu.read_f32(&loss_tensors).await?;
        let mut scaled = vec![0.0f32; tasks];
        for ((t, share, _), v) in losses.iter().zip(&values) {
            scaled[*t] += (share * v[0] as f64) as f32;
        }
        self.comm.all_reduce_sum(&mut scaled)?;
        reduce_s += started.elapsed().as_secs_f64();
        let stats = &mut self.reduce_stats;
        stats.steps += 1;
        stats.bytes += 4 * (elements + tasks) as u64;
        stats.readback_s += read_s;
        stats.reduce_s += reduce_s;
        Ok(scaled.iter().map(|&l| l as f64).collect())
    }

    /// The trained spans of the gradient arenas (the optimizer's update ranges cut at
    /// parameter boundaries, padding left out), in buckets by [`bucket_of`], each sorted
    /// and merged.
    fn gradient_buckets(&self) -> Vec<Vec<(usize, usize, usize)>> {
        let layout = &self.model.store.layout;
        let layers = self.model.spec.encoder.layers;
        let mut buckets: Vec<Vec<(usize, usize, usize)>> = vec![Vec::new(); layers + 3];
        for r in self.optimizer.ranges() {
            for slot in layout.slots.iter().filter(|s| s.arena == r.arena) {
                let end = slot.offset + slot.shape.iter().product::<usize>();
                let (a, b) = (slot.offset.max(r.start), end.min(r.end));
                if a < b {
                    let bucket = if slot.name.starts_with("tasks.") {
                        bucket_of(None, layers)
                    } else {
                        match encoder_stage(&slot.name) {
                            Some(stage) => bucket_of(Some(stage), layers),
                            None => layers + 2, // (read after everything else)
                        }
                    };
                    buckets[bucket].push((slot.arena, a, b));
                }
            }
        }
        for spans in &mut buckets {
            spans.sort_unstable();
            let mut merged: Vec<(usize, usize, usize)> = Vec::with_capacity(spans.len());
            for &(arena, a, b) in spans.iter() {
                match merged.last_mut() {
                    Some(last) if last.0 == arena && last.2 == a => last.2 = b,
                    _ => merged.push((arena, a, b)),
                }
            }
            *spans = merged;
        }
        buckets
    }

    /// Batch `k` of this step uploaded and run forward with its own dropout seed, through the
    /// heads of the tasks it labels (only `own`'s when given).
    fn forward_batch(
        &self,
        k: usize,
        batch: &Batch,
        own: Option<usize>,
    ) -> Result<(DeviceBatch, ForwardPass, Mode)> {
        let spec = &self.model.spec;
        let run: Vec<bool> = batch
            .targets
            .iter()
            .enumerate()
            .map(|(t, targets)| own.is_none_or(|o| o == t) && targets.any_labelled())
            .collect();
        let device_batch = DeviceBatch::new(self.model.params().gpu(), batch, &spec.encoder, true)?;
        let mode = Mode::Train {
            seed: rank_seed(batch_seed(spec.encoder.seed, k), self.comm.rank()),
            step: self.step,
        };
        let pass = self.model.forward(&device_batch, mode, Some(&run))?;
        Ok((device_batch, pass, mode))
    }

    /// The AdamW step over the groups of the tasks that trained (the encoder when any did).
    fn finish_step(
        &mut self,
        lr: f32,
        total: Total,
        per_task: Vec<Option<Tensor>>,
        labelled: &[bool],
        weights: Vec<f32>,
        cosines: Option<Vec<f32>>,
    ) -> Result<StepOutput> {
        let any = labelled.iter().any(|&l| l);
        let clip = self
            .optimizer
            .step(&self.model.store, lr, |owner| match owner {
                Owner::Encoder => any,
                Owner::Task(i) => labelled[i],
            })?;
        Ok(StepOutput {
            lr,
            total,
            per_task,
            clip,
            weights,
            cosines,
        })
    }

    /// A [`StepPlan::WeightsFromLosses`] step: every batch's forward (batch k training task
    /// `own[k]`) and unit-weight losses, the losses read back, the weights from
    /// [`Weighter::combine`], then each batch's losses again with those weights (small loss
    /// kernels) and its backward into the step's gradient set.
    async fn step_weighted_by_losses(
        &mut self,
        batches: &[Batch],
        own: &[usize],
        lr: f32,
    ) -> Result<StepOutput> {
        let tasks = self.model.spec.tasks.len();
        self.model.set_task_weights(&vec![1.0; tasks])?;
        let mut passes = Vec::with_capacity(batches.len());
        let mut per_task: Vec<Option<Tensor>> = vec![None; tasks];
        for (k, batch) in batches.iter().enumerate() {
            let (device_batch, pass, mode) = self.forward_batch(k, batch, Some(own[k]))?;
            let losses = self
                .model
                .task_losses(&pass, &batch.targets, HiddenGrads::WeightedSum)?;
            per_task[own[k]] = losses.per_task[own[k]].as_ref().map(|l| l.loss.clone());
            passes.push((device_batch, pass, mode));
        }
        let losses = read_losses(&per_task).await?;
        if let Some(t) = per_task.iter().position(Option::is_none) {
            bail!(
                "task '{}' had no labels in its batch",
                self.model.spec.tasks[t].name
            );
        }
        let combination = self.weighter.combine(self.step, &losses, None, lr as f64)?;
        check_finite(&combination.heads, self.weighter.method, self.step, &losses)?;
        let weights: Vec<f32> = combination.heads.iter().map(|&w| w as f32).collect();
        self.model.set_task_weights(&weights)?;
        self.model.store.zero_grads();
        for ((device_batch, pass, mode), batch) in passes.iter().zip(batches) {
            let losses = self
                .model
                .task_losses(pass, &batch.targets, HiddenGrads::WeightedSum)?;
            let grads = &self.model.store.grads;
            let dhidden = self
                .model
                .backward_tasks_summed(pass, device_batch, &losses, grads)?;
            self.model
                .backward_encoder(pass, device_batch, dhidden, grads, *mode)?;
        }
        drop(passes);
        let total = losses
            .iter()
            .zip(&combination.heads)
            .map(|(l, w)| l * w)
            .sum::<f64>() as f32;
        self.finish_step(
            lr,
            Total::Host(total),
            per_task,
            &vec![true; tasks],
            weights,
            None,
        )
    }

    /// Reads the step's losses (and the Gram matrix of the tasks' encoder gradients), asks
    /// the weighter for the coefficients and writes `sum_k a_k g_k` into the step's gradient
    /// set: the encoder's segments weighted by `encoder`, each head's by `heads`. Returns the
    /// weighted loss, the coefficients and the cosines.
    async fn combine_task_gradients(
        &mut self,
        per_task: &[Option<Tensor>],
        lr: f32,
    ) -> Result<(f32, Vec<f32>, Vec<f32>)> {
        let tasks = per_task.len();
        let store = &self.model.store;
        let gpu = store.grads.gpu().clone();
        // The trained part of the encoder (frozen parameters have no gradient to compare).
        let encoder_segments = self.optimizer.encoder_segments(&store.layout);
        let view = |set: &ArenaSet, seg: &crate::model::store::Segment| {
            set.arenas[seg.arena].view(seg.start, &[seg.end - seg.start])
        };
        let mut pairs = Vec::new();
        let mut dots = Vec::new();
        for i in 0..tasks {
            for j in i..tasks {
                for seg in &encoder_segments {
                    dots.push(dot(
                        &view(&self.task_grads[i], seg)?,
                        &view(&self.task_grads[j], seg)?,
                    )?);
                    pairs.push((i, j));
                }
            }
        }
        let mut tensors: Vec<&Tensor> = Vec::with_capacity(tasks + dots.len());
        for (t, loss) in per_task.iter().enumerate() {
            tensors.push(loss.as_ref().ok_or_else(|| {
                anyhow::anyhow!(
                    "task '{}' had no labels in its batch",
                    self.model.spec.tasks[t].name
                )
            })?);
        }
        tensors.extend(dots.iter());
        let values = gpu.read_f32(&tensors).await?;
        let losses: Vec<f64> = values[..tasks].iter().map(|v| v[0] as f64).collect();
        let mut gram = vec![vec![0.0f64; tasks]; tasks];
        for (&(i, j), v) in pairs.iter().zip(&values[tasks..]) {
            gram[i][j] += v[0] as f64;
            if i != j {
                gram[j][i] += v[0] as f64;
            }
        }
        let combination = self
            .weighter
            .combine(self.step, &losses, Some(&gram), lr as f64)?;
        check_finite(
            combination.encoder.iter().chain(&combination.heads),
            self.weighter.method,
            self.step,
            &losses,
        )?;
        let store = &self.model.store;
        store.zero_grads();
        for group in &store.layout.groups {
            for seg in &group.segments {
                let out = view(&store.grads, seg)?;
                for (k, set) in self.task_grads.iter().enumerate() {
                    let coefficient = match group.owner {
                        Owner::Encoder => combination.encoder[k],
                        // Only task k's batch reaches task k's head.
                        Owner::Task(t) if t == k => combination.heads[k],
                        Owner::Task(_) => continue,
                    };
                    accumulate(&out, &view(set, seg)?, coefficient as f32)?;
                }
            }
        }
        let loss = losses
            .iter()
            .zip(&combination.encoder)
            .map(|(l, a)| l * a)
            .sum::<f64>() as f32;
        let cosines = methods::cosines(&gram).iter().map(|&c| c as f32).collect();
        let weights = combination.encoder.iter().map(|&a| a as f32).collect();
        Ok((loss, weights, cosines))
    }
}

/// An error naming the method and step when a coefficient is NaN or Inf.
fn check_finite<'a>(
    coefficients: impl IntoIterator<Item = &'a f64>,
    method: Weighting,
    step: u64,
    losses: &[f64],
) -> Result<()> {
    if let Some(bad) = coefficients.into_iter().find(|x| !x.is_finite()) {
        bail!(
            "weighting \"{}\" produced a non-finite coefficient ({bad}) at step {step}; the \
             losses were {losses:?}: lower [train] lr",
            method.name()
        );
    }
    Ok(())
}

/// Each task's step loss, read back (awaiting the device).
async fn read_losses(per_task: &[Option<Tensor>]) -> Result<Vec<f64>> {
    let present: Vec<&Tensor> = per_task.iter().flatten().collect();
    let Some(first) = present.first() else {
        return Ok(vec![0.0; per_task.len()]);
    };
    let values = first.gpu().read_f32(&present).await?;
    let mut values = values.iter();
    Ok(per_task
        .iter()
        .map(|t| {
            t.as_ref()
                .map_or(0.0, |_| values.next().expect("one per loss")[0] as f64)
        })
        .collect())
}

/// The dropout seed of a step's batch `k`: the model's for the first, a distinct one for each
/// other (so the batches of one step do not share masks).
fn batch_seed(seed: u64, k: usize) -> u64 {
    seed ^ (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The dropout seed of data-parallel rank `rank` (rank 0, and a single process, keep
/// `seed`): every rank's shard gets its own masks.
fn rank_seed(seed: u64, rank: usize) -> u64 {
    seed ^ (rank as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)
}

/// The bucket of a data-parallel step's gradients that a finished backward stage fills, in
/// the order the backward finishes them: the tasks (`None`) first, then the encoder's stages
/// from the top layer (stage `layers`) down to the embeddings (stage 0).
fn bucket_of(stage: Option<usize>, layers: usize) -> usize {
    match stage {
        None => 0,
        Some(s) => 1 + layers - s.min(layers),
    }
}
