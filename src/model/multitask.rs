//! The gated multi-task model: a BERT encoder shared by every task, a gate and a head per
//! task, and a training pass in stages the caller composes:
//!
//! 1. [`MultiTaskModel::forward`]: the encoder once, then the tasks asked for;
//! 2. [`MultiTaskModel::task_losses`]: each labelled task's loss (unweighted) and d(logits);
//! 3. [`MultiTaskModel::backward_tasks_each`] / [`MultiTaskModel::backward_tasks_summed`]:
//!    back through each head and gate, giving one d(hidden) per task, or their sum weighted by
//!    the task weights (one buffer, no extra pass);
//! 4. [`MultiTaskModel::backward_encoder`]: a d(hidden) back through the encoder.
//!
//! Every backward adds parameter gradients into the gradient set it is given.
//! [`MultiTaskModel::backward`] is the joint loss `sum_i w_i L_i` through all four.
//!
//! A generation task's head is a decoder (`nn::decoder`) reading the gated encoder output:
//! its forward runs teacher-forced when the batch has targets for it; its loss is the tied
//! output projection's fused cross-entropy, whose word-embedding gradient is kept with the
//! loss (`TaskLosses`) and added into the gradient set by the task's backward, beside the
//! decoder's own; [`MultiTaskModel::generate`] decodes it.

use anyhow::Result;

use super::generate::{Hypothesis, Special, beam, greedy};
use super::host::HostParams;
use super::spec::{ModelSpec, ParamSpec};
use super::store::ParamStore;
use crate::data::TaskTargets;
use crate::gpu::{DType, Gpu, Tensor};
use crate::nn::decoder::{Decoder, DecoderSaved, Memory};
use crate::nn::encoder::{Encoder, EncoderSaved};
use crate::nn::gate::{Gate, GateSaved};
use crate::nn::head::{Head, HeadSaved};
use crate::nn::params::{ArenaSet, ParamBuilder};
use crate::nn::{DeviceBatch, GradInto, Mode};
use crate::ops::elementwise::{accumulate, accumulate_weighted};
use crate::ops::loss::{CrossEntropyOptions, GradScale, LossOutput, TaskWeight};
use crate::tasks::TaskSpec;

/// How [`MultiTaskModel::generate`] decodes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GenerateSettings {
    /// 1: greedy; more: beam search with this many beams.
    pub beam: usize,
    pub length_penalty: f64,
    /// At most the decoder's max_length.
    pub max_new_tokens: usize,
    pub special: Special,
}

/// One task's gate and head.
pub struct TaskModule {
    pub gate: Gate,
    pub head: TaskHead,
}

/// What reads a task's gated encoder output.
pub enum TaskHead {
    /// Pooling (sequence tasks) and an MLP.
    Mlp(Head),
    /// A generation task's decoder.
    Decoder(Box<Decoder>),
}

/// What a task head's backward needs.
pub enum HeadPass {
    Mlp(HeadSaved),
    /// A decoder run teacher-forced; `None` when the batch had no targets for the task (the
    /// gated output is then all there is: generation starts from it).
    Decoder(Option<DecoderSaved>),
}

/// The layers of a model of `spec`, and the parameter list they declared.
pub struct Layers {
    pub encoder: Encoder,
    pub tasks: Vec<TaskModule>,
}

impl Layers {
    /// Declares every parameter: the encoder's under Hugging Face BertModel's names, then
    /// each task's gate and head under `tasks.<name>.gate` and `tasks.<name>.head.<k>`.
    pub fn declare(spec: &ModelSpec) -> (Self, Vec<ParamSpec>) {
        let pb = ParamBuilder::new();
        let d = spec.encoder.hidden;
        let encoder = Encoder::new(&pb, &spec.encoder);
        let tasks = spec
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let task = pb
                    .pp("tasks")
                    .pp(&t.name)
                    .owned_by(super::spec::Owner::Task(i));
                let head = match spec.decoder_dims(t) {
                    Some(dims) => TaskHead::Decoder(Box::new(Decoder::new(
                        &task.pp("decoder"),
                        &dims,
                        encoder.embeddings.word.clone(),
                        DECODER_SITES * (i as u64 + 1),
                    ))),
                    None => TaskHead::Mlp(Head::new(
                        &task.pp("head"),
                        d,
                        &t.head.hidden,
                        t.output_width(),
                        t.head.activation,
                        t.kind.is_sequence_level().then(|| t.pooling()),
                    )),
                };
                TaskModule {
                    gate: Gate::new(&task.pp("gate"), t.gate, d),
                    head,
                }
            })
            .collect();
        (Self { encoder, tasks }, pb.specs())
    }
}

/// Dropout sites of task `i`'s decoder start at `DECODER_SITES * (i + 1)`, clear of the
/// encoder's and of each other's.
const DECODER_SITES: u64 = 1 << 20;

/// The model on the GPU.
pub struct MultiTaskModel {
    pub spec: ModelSpec,
    pub store: ParamStore,
    /// `[tasks]`: each task's weight in the joint loss (the spec's lambdas until set), read
    /// by the loss kernels on the GPU.
    task_weights: Tensor,
    pub encoder: Encoder,
    pub tasks: Vec<TaskModule>,
    /// The encoder stages (embeddings 0, layer i at i + 1) below this one hold only frozen
    /// parameters: the encoder's backward stops above them (0 unless training freezes the
    /// bottom of the encoder; see `nn::encoder::encoder_stage`).
    pub frozen_below: usize,
}

/// A task's forward results.
pub struct TaskPass {
    /// The gated encoder output the head read.
    pub gated: Tensor,
    pub gate: GateSaved,
    pub head: HeadPass,
    /// `[B, out]` (sequence tasks) or `[B*T, out]` (token tasks); a generation task's
    /// decoder output `[B*Tt, d]` (its logits are never stored whole), or the gated output
    /// when the decoder did not run.
    pub logits: Tensor,
}

/// A forward pass, with what the backward needs.
pub struct ForwardPass {
    /// Encoder output `[B*T, d]`.
    pub hidden: Tensor,
    encoder: EncoderSaved,
    /// Per task, `None` when the task was not run.
    pub tasks: Vec<Option<TaskPass>>,
    /// The mode the forward ran in (the decoders' backward replays its dropout).
    mode: Mode,
}

/// How the task losses scale d(logits): for the weighted sum of the d(hidden), or for one
/// unweighted d(hidden) per task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HiddenGrads {
    /// `sum_i w_i d(L_i)/d(hidden)` in one buffer, each task's d(logits) scaled by its
    /// weight in the loss kernel (the task's head and gate gradients are weighted too).
    WeightedSum,
    /// One unweighted `d(L_i)/d(hidden)` per labelled task, for methods that combine them
    /// (the task's head and gate gradients are those of its own, unweighted loss).
    PerTask,
}

/// Each task's loss of one forward and d(logits) (`None`: the task was not run or has no
/// labels), with how d(logits) was scaled and the task weights it was scaled by, so the
/// backward that follows and the weighted total cannot use others.
pub struct TaskLosses {
    pub per_task: Vec<Option<LossOutput>>,
    pub how: HiddenGrads,
    weights: Tensor,
    /// Generation tasks: the word embeddings' gradient from the tied output projection.
    tied: Vec<Option<Tensor>>,
}

/// Losses of one backward: the weighted total and each task's (`None`: no labels).
pub struct Losses {
    pub total: Tensor,
    pub per_task: Vec<Option<Tensor>>,
}

impl MultiTaskModel {
    /// Uploads `params` (which must match `spec`) and builds the layers over them.
    pub fn new(gpu: &Gpu, spec: ModelSpec, params: &HostParams) -> Result<Self> {
        let (layers, specs) = Layers::declare(&spec);
        let store = ParamStore::new(gpu, &specs, params)?;
        let lambdas: Vec<f32> = spec.tasks.iter().map(|t| t.lambda).collect();
        Ok(Self {
            task_weights: Tensor::from_slice(gpu, &lambdas, &[lambdas.len()])?,
            spec,
            store,
            encoder: layers.encoder,
            tasks: layers.tasks,
            frozen_below: 0,
        })
    }

    /// The parameters.
    pub fn params(&self) -> &ArenaSet {
        &self.store.params
    }

    /// The task weights `[tasks]` the next losses will use.
    pub fn task_weights(&self) -> &Tensor {
        &self.task_weights
    }

    /// Sets the task weights from the host: an upload into a fresh buffer (never a wait, and
    /// work already recorded keeps reading the weights it was recorded with).
    pub fn set_task_weights(&mut self, weights: &[f32]) -> Result<()> {
        if weights.len() != self.spec.tasks.len() {
            anyhow::bail!(
                "{} task weights for {} tasks",
                weights.len(),
                self.spec.tasks.len()
            );
        }
        if let Some(w) = weights.iter().find(|w| !w.is_finite() || **w < 0.0) {
            anyhow::bail!("task weights must be finite and >= 0, got {w}");
        }
        self.task_weights = Tensor::from_slice(self.params().gpu(), weights, &[weights.len()])?;
        Ok(())
    }

    /// Sets the task weights to a GPU tensor `[tasks]` (computed on the GPU by a weighting
    /// method); the host reads nothing.
    pub fn set_task_weights_tensor(&mut self, weights: Tensor) -> Result<()> {
        if weights.shape() != [self.spec.tasks.len()] || weights.dtype() != DType::F32 {
            anyhow::bail!(
                "task weights must be f32 [{}], got {:?} {:?}",
                self.spec.tasks.len(),
                weights.dtype(),
                weights.shape()
            );
        }
        self.task_weights = weights;
        Ok(())
    }

    /// Runs the encoder and the tasks marked in `run` (all when `None`).
    pub fn forward(
        &self,
        batch: &DeviceBatch,
        mode: Mode,
        run: Option<&[bool]>,
    ) -> Result<ForwardPass> {
        let w = self.params();
        let (hidden, encoder) = self.encoder.forward(w, batch, mode)?;
        let tasks = self
            .tasks
            .iter()
            .enumerate()
            .map(|(i, task)| {
                if run.is_some_and(|r| !r[i]) {
                    return Ok(None);
                }
                let (gated, gate) = task.gate.forward(w, &hidden)?;
                let (logits, head) = match &task.head {
                    TaskHead::Mlp(head) => {
                        let (logits, saved) = head.forward(w, &gated, batch)?;
                        (logits, HeadPass::Mlp(saved))
                    }
                    TaskHead::Decoder(decoder) => match &batch.decoders[i] {
                        Some(inputs) => {
                            let memory = Self::memory(&gated, batch);
                            let (x, saved) = decoder.forward(w, inputs, &memory, mode)?;
                            (x, HeadPass::Decoder(Some(saved)))
                        }
                        None => (gated.clone(), HeadPass::Decoder(None)),
                    },
                };
                Ok(Some(TaskPass {
                    gated,
                    gate,
                    head,
                    logits,
                }))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ForwardPass {
            hidden,
            encoder,
            tasks,
            mode,
        })
    }

    /// The memory a decoder reads: the gated encoder output and the batch's padding mask.
    fn memory<'a>(gated: &'a Tensor, batch: &'a DeviceBatch) -> Memory<'a> {
        Memory {
            states: gated,
            mask: &batch.mask,
            tk: batch.seq,
        }
    }

    /// Generates text for every row of `batch` with task `i`'s decoder (greedy when
    /// `beam` is 1), reading the gated output of a forward that ran the task: each row's
    /// hypotheses, best first.
    pub async fn generate(
        &self,
        i: usize,
        pass: &ForwardPass,
        batch: &DeviceBatch,
        settings: &GenerateSettings,
    ) -> Result<Vec<Vec<Hypothesis>>> {
        let TaskHead::Decoder(decoder) = &self.tasks[i].head else {
            anyhow::bail!("task '{}' does not generate text", self.spec.tasks[i].name);
        };
        let tp = pass.tasks[i]
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("task {i} was not run"))?;
        let memory = Self::memory(&tp.gated, batch);
        let w = self.params();
        let max_new = settings.max_new_tokens.min(decoder.dims.max_length);
        if settings.beam <= 1 {
            let found = greedy(decoder, w, &memory, settings.special, max_new).await?;
            Ok(found.into_iter().map(|h| vec![h]).collect())
        } else {
            beam(
                decoder,
                w,
                &memory,
                settings.special,
                settings.beam,
                settings.length_penalty,
                max_new,
            )
            .await
        }
    }

    /// Each task's loss on `targets` with its d(logits) (`None`: the task was not run or
    /// has no labels in the batch). The loss is unweighted; d(logits) is scaled by the task's
    /// weight for [`HiddenGrads::WeightedSum`], unscaled for [`HiddenGrads::PerTask`].
    pub fn task_losses(
        &self,
        pass: &ForwardPass,
        targets: &[TaskTargets],
        how: HiddenGrads,
    ) -> Result<TaskLosses> {
        let mut tied = vec![None; self.spec.tasks.len()];
        let per_task = self
            .spec
            .tasks
            .iter()
            .enumerate()
            .map(|(i, task)| {
                let labelled = targets.get(i).is_some_and(TaskTargets::any_labelled);
                let Some(tp) = pass.tasks[i].as_ref().filter(|_| labelled) else {
                    return Ok(None);
                };
                let scale = match how {
                    HiddenGrads::WeightedSum => GradScale {
                        factor: 1.0,
                        task_weight: Some(TaskWeight {
                            weights: self.task_weights.clone(),
                            index: i,
                        }),
                    },
                    HiddenGrads::PerTask => GradScale::from(1.0),
                };
                if let TaskHead::Decoder(decoder) = &self.tasks[i].head {
                    let (out, dword) = self.decoder_loss(task, decoder, tp, &targets[i], scale)?;
                    tied[i] = Some(dword);
                    return Ok(Some(out));
                }
                task.kind
                    .loss(task, &tp.logits, &targets[i], scale)
                    .map(Some)
            })
            .collect::<Result<_>>()?;
        Ok(TaskLosses {
            per_task,
            how,
            weights: self.task_weights.clone(),
            tied,
        })
    }

    /// A generation task's token cross-entropy through the tied output projection, its
    /// d(decoder output) in `dlogits`, and the word embeddings' gradient from it.
    fn decoder_loss(
        &self,
        task: &TaskSpec,
        decoder: &Decoder,
        tp: &TaskPass,
        targets: &TaskTargets,
        scale: GradScale,
    ) -> Result<(LossOutput, Tensor)> {
        let TaskTargets::Sequences { labels, .. } = targets else {
            anyhow::bail!(
                "task '{}': generation targets must be token sequences",
                task.name
            );
        };
        if !matches!(tp.head, HeadPass::Decoder(Some(_))) {
            anyhow::bail!(
                "task '{}': the decoder did not run on this batch",
                task.name
            );
        }
        let out = &decoder.output;
        let dword = Tensor::zeros(tp.logits.gpu(), &[out.vocab, out.hidden], DType::F32)?;
        let opts = CrossEntropyOptions {
            label_smoothing: task.label_smoothing.unwrap_or(0.0),
            grad_scale: scale.factor,
            task_weight: scale.task_weight,
            ..Default::default()
        };
        let loss = out.loss_and_backward(self.params(), Some(&dword), &tp.logits, labels, &opts)?;
        Ok((
            LossOutput {
                row_loss: loss.loss.clone(),
                loss: loss.loss,
                dlogits: loss.dx,
            },
            dword,
        ))
    }

    /// The weighted total `sum_i w_i L_i` of `losses` (on the GPU), with the weights the
    /// losses were made with.
    pub fn weighted_total(&self, losses: &TaskLosses) -> Result<Tensor> {
        let total = Tensor::zeros(self.params().gpu(), &[1], DType::F32)?;
        for (i, loss) in losses.per_task.iter().enumerate() {
            if let Some(loss) = loss {
                accumulate_weighted(&total, &loss.loss, 1.0, &losses.weights, i)?;
            }
        }
        Ok(total)
    }

    /// An error unless `losses` were made for `how`.
    fn expect_losses(losses: &TaskLosses, how: HiddenGrads) -> Result<()> {
        if losses.how != how {
            anyhow::bail!(
                "these task losses were made for {:?} d(hidden), not {how:?}",
                losses.how
            );
        }
        Ok(())
    }

    /// Back-propagates task `i`'s d(logits) through its head and gate, adding their parameter
    /// gradients into `g` and the task's gradient of the encoder output into `dhidden`.
    #[allow(clippy::too_many_arguments)]
    fn backward_task(
        &self,
        i: usize,
        pass: &ForwardPass,
        batch: &DeviceBatch,
        loss: &LossOutput,
        tied: Option<&Tensor>,
        g: &ArenaSet,
        dhidden: &Tensor,
    ) -> Result<()> {
        let (w, task) = (self.params(), &self.tasks[i]);
        let tp = pass.tasks[i]
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("task {i} has a loss but was not run"))?;
        let head = match (&task.head, &tp.head) {
            (TaskHead::Mlp(head), HeadPass::Mlp(saved)) => (head, saved),
            (TaskHead::Decoder(decoder), HeadPass::Decoder(Some(saved))) => {
                let inputs = batch.decoders[i]
                    .as_ref()
                    .ok_or_else(|| anyhow::anyhow!("task {i}: the batch has no decoder inputs"))?;
                let memory = Self::memory(&tp.gated, batch);
                let dmemory = decoder.backward(
                    w,
                    g,
                    loss.dlogits.clone(),
                    saved,
                    inputs,
                    &memory,
                    pass.mode,
                )?;
                if let Some(dword) = tied {
                    accumulate(&g.get(&decoder.output.word)?, dword, 1.0)?;
                }
                if matches!(task.gate, Gate::None) {
                    return accumulate(dhidden, &dmemory, 1.0);
                }
                return task
                    .gate
                    .backward(w, g, &pass.hidden, &dmemory, &tp.gate, dhidden);
            }
            _ => anyhow::bail!("task {i}: its head did not run in this forward"),
        };
        let (head, saved) = head;
        if matches!(task.gate, Gate::None) {
            return head.backward(
                w,
                g,
                &tp.gated,
                &loss.dlogits,
                saved,
                batch,
                GradInto::Add(dhidden),
            );
        }
        let dgated = Tensor::empty(dhidden.gpu(), dhidden.shape(), DType::F32)?;
        head.backward(
            w,
            g,
            &tp.gated,
            &loss.dlogits,
            saved,
            batch,
            GradInto::Write(&dgated),
        )?;
        task.gate
            .backward(w, g, &pass.hidden, &dgated, &tp.gate, dhidden)
    }

    /// The weighted sum `sum_i w_i d(L_i)/d(hidden)` in one buffer, each task's head and gate
    /// gradients added into `g` (`losses` from [`MultiTaskModel::task_losses`] with
    /// [`HiddenGrads::WeightedSum`]: the weights are already in their d(logits)).
    pub fn backward_tasks_summed(
        &self,
        pass: &ForwardPass,
        batch: &DeviceBatch,
        losses: &TaskLosses,
        g: &ArenaSet,
    ) -> Result<Tensor> {
        Self::expect_losses(losses, HiddenGrads::WeightedSum)?;
        let dhidden = Tensor::zeros(pass.hidden.gpu(), pass.hidden.shape(), DType::F32)?;
        for (i, loss) in losses.per_task.iter().enumerate() {
            if let Some(loss) = loss {
                let tied = losses.tied[i].as_ref();
                self.backward_task(i, pass, batch, loss, tied, g, &dhidden)?;
            }
        }
        Ok(dhidden)
    }

    /// Each task's own `d(L_i)/d(hidden)` (`None` for tasks without a loss), each task's head
    /// and gate gradients added into `g` (`losses` from [`MultiTaskModel::task_losses`] with
    /// [`HiddenGrads::PerTask`]).
    pub fn backward_tasks_each(
        &self,
        pass: &ForwardPass,
        batch: &DeviceBatch,
        losses: &TaskLosses,
        g: &ArenaSet,
    ) -> Result<Vec<Option<Tensor>>> {
        Self::expect_losses(losses, HiddenGrads::PerTask)?;
        losses
            .per_task
            .iter()
            .enumerate()
            .map(|(i, loss)| {
                let Some(loss) = loss else {
                    return Ok(None);
                };
                let dhidden = Tensor::zeros(pass.hidden.gpu(), pass.hidden.shape(), DType::F32)?;
                let tied = losses.tied[i].as_ref();
                self.backward_task(i, pass, batch, loss, tied, g, &dhidden)?;
                Ok(Some(dhidden))
            })
            .collect()
    }

    /// Back-propagates `dhidden` (a gradient of the encoder output) through the encoder,
    /// adding its parameter gradients into `g`.
    pub fn backward_encoder(
        &self,
        pass: &ForwardPass,
        batch: &DeviceBatch,
        dhidden: Tensor,
        g: &ArenaSet,
        mode: Mode,
    ) -> Result<()> {
        self.encoder.backward(
            self.params(),
            g,
            dhidden,
            &pass.encoder,
            batch,
            mode,
            self.frozen_below,
        )
    }

    /// The joint loss `sum_i w_i L_i` of every labelled task, back-propagated into `g`
    /// (which the caller zeroes between steps). Tasks without labels in `targets` contribute
    /// nothing and get no gradient.
    pub fn backward(
        &self,
        pass: &ForwardPass,
        batch: &DeviceBatch,
        targets: &[TaskTargets],
        g: &ArenaSet,
        mode: Mode,
    ) -> Result<Losses> {
        self.backward_reporting(pass, batch, targets, g, mode, &mut |_| Ok(()))
    }

    /// [`MultiTaskModel::backward`], calling `done(stage)` once a stage's parameter
    /// gradients are recorded, in the order the backward finishes them: `None` for the
    /// tasks' gates and heads (and decoders), then `Some(encoder stage)` from the top layer
    /// down (see [`crate::nn::encoder::encoder_stage`]; frozen stages are not reported).
    pub fn backward_reporting(
        &self,
        pass: &ForwardPass,
        batch: &DeviceBatch,
        targets: &[TaskTargets],
        g: &ArenaSet,
        mode: Mode,
        done: &mut dyn FnMut(Option<usize>) -> Result<()>,
    ) -> Result<Losses> {
        let losses = self.task_losses(pass, targets, HiddenGrads::WeightedSum)?;
        let total = self.weighted_total(&losses)?;
        let dhidden = self.backward_tasks_summed(pass, batch, &losses, g)?;
        done(None)?;
        let stages = (
            self.params(),
            g,
            &pass.encoder,
            batch,
            mode,
            self.frozen_below,
        );
        self.encoder
            .backward_reporting(dhidden, stages, &mut |stage| done(Some(stage)))?;
        Ok(Losses {
            total,
            per_task: losses
                .per_task
                .into_iter()
                .map(|l| l.map(|l| l.loss))
                .collect(),
        })
    }
}
