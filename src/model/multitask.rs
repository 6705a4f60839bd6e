//! The gated multi-task model: a BERT encoder shared by every task, a gate and a head per
//! task, the joint loss `sum_i lambda_i L_i`, and the backward that meets in the encoder.

use anyhow::Result;

use super::device_batch::DeviceBatch;
use super::host::HostParams;
use super::spec::{ModelSpec, layer_prefix};
use super::store::ParamStore;
use crate::config::GateMode;
use crate::data::TaskTargets;
use crate::gpu::{DType, Gpu, Tensor};
use crate::nn::attention::{AttentionCore, SelfAttention};
use crate::nn::embeddings::{Embeddings, EmbeddingsSaved};
use crate::nn::encoder_layer::{EncoderLayer, LayerSaved};
use crate::nn::gate::{Gate, GateSaved};
use crate::nn::head::{Head, HeadSaved};
use crate::nn::layernorm::LayerNorm;
use crate::nn::linear::Linear;
use crate::nn::{GradInto, Mode, Site};
use crate::ops::elementwise::accumulate;
use crate::ops::loss::LossOutput;

/// One task's gate and head.
pub struct TaskModule {
    pub gate: Gate,
    pub head: Head,
}

/// The model on the GPU.
pub struct MultiTaskModel {
    pub spec: ModelSpec,
    pub store: ParamStore,
    pub embeddings: Embeddings,
    pub layers: Vec<EncoderLayer>,
    pub tasks: Vec<TaskModule>,
}

/// A task's forward results.
pub struct TaskPass {
    /// The gated encoder output the head read.
    pub gated: Tensor,
    pub gate: GateSaved,
    pub head: HeadSaved,
    /// `[B, out]` (sequence tasks) or `[B*T, out]` (token tasks).
    pub logits: Tensor,
}

/// A forward pass, with what the backward needs.
pub struct ForwardPass {
    /// Encoder output `[B*T, d]`.
    pub hidden: Tensor,
    embeddings: EmbeddingsSaved,
    layers: Vec<LayerSaved>,
    /// Per task, `None` when the task was not run.
    pub tasks: Vec<Option<TaskPass>>,
}

/// Losses of one backward: the weighted total and each task's (`None`: no labels).
pub struct Losses {
    pub total: Tensor,
    pub per_task: Vec<Option<Tensor>>,
}

fn linear(store: &ParamStore, prefix: &str) -> Result<Linear> {
    Ok(Linear {
        weight: store.param(&format!("{prefix}.weight"))?,
        bias: store.param(&format!("{prefix}.bias"))?,
        dweight: store.grad(&format!("{prefix}.weight"))?,
        dbias: store.grad(&format!("{prefix}.bias"))?,
    })
}

fn layer_norm(store: &ParamStore, prefix: &str, eps: f32) -> Result<LayerNorm> {
    Ok(LayerNorm {
        gamma: store.param(&format!("{prefix}.weight"))?,
        beta: store.param(&format!("{prefix}.bias"))?,
        dgamma: store.grad(&format!("{prefix}.weight"))?,
        dbeta: store.grad(&format!("{prefix}.bias"))?,
        eps,
    })
}

fn fused_qkv(store: &ParamStore, prefix: &str, d: usize) -> Result<Linear> {
    let names = |what: &str| -> Vec<String> {
        ["query", "key", "value"]
            .iter()
            .map(|p| format!("{prefix}.attention.self.{p}.{what}"))
            .collect()
    };
    let (weight, dweight) = store.fused(&names("weight"), &[3 * d, d])?;
    let (bias, dbias) = store.fused(&names("bias"), &[3 * d])?;
    Ok(Linear {
        weight,
        bias,
        dweight,
        dbias,
    })
}

impl MultiTaskModel {
    /// Uploads `params` (which must match `spec`) and builds the layers over them.
    pub fn new(gpu: &Gpu, spec: ModelSpec, params: &HostParams) -> Result<Self> {
        let store = ParamStore::new(gpu, &spec.param_specs(), params)?;
        Self::from_store(spec, store)
    }

    /// Builds the layers over an existing parameter store.
    pub fn from_store(spec: ModelSpec, store: ParamStore) -> Result<Self> {
        let d = &spec.encoder;
        let eps = d.layer_norm_eps as f32;
        let embeddings = Embeddings {
            word: store.param("embeddings.word_embeddings.weight")?,
            position: store.param("embeddings.position_embeddings.weight")?,
            token_type: store.param("embeddings.token_type_embeddings.weight")?,
            dword: store.grad("embeddings.word_embeddings.weight")?,
            dposition: store.grad("embeddings.position_embeddings.weight")?,
            dtoken_type: store.grad("embeddings.token_type_embeddings.weight")?,
            norm: layer_norm(&store, "embeddings.LayerNorm", eps)?,
            dropout: d.dropout,
        };
        let layers = (0..d.layers)
            .map(|i| {
                let p = layer_prefix(i);
                Ok(EncoderLayer {
                    attention: SelfAttention {
                        qkv: fused_qkv(&store, &p, d.hidden)?,
                        output: linear(&store, &format!("{p}.attention.output.dense"))?,
                        core: AttentionCore {
                            heads: d.heads,
                            dropout: d.attention_dropout,
                            site: Site(1 + 3 * i as u64),
                        },
                    },
                    attention_norm: layer_norm(
                        &store,
                        &format!("{p}.attention.output.LayerNorm"),
                        eps,
                    )?,
                    intermediate: linear(&store, &format!("{p}.intermediate.dense"))?,
                    output: linear(&store, &format!("{p}.output.dense"))?,
                    output_norm: layer_norm(&store, &format!("{p}.output.LayerNorm"), eps)?,
                    dropout: d.dropout,
                    site: 2 + 3 * i as u64,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let tasks = spec
            .tasks
            .iter()
            .map(|t| {
                let prefix = format!("tasks.{}", t.name);
                let gate = match t.gate {
                    GateMode::None => Gate::None,
                    GateMode::Scalar => Gate::Scalar(linear(&store, &format!("{prefix}.gate"))?),
                    GateMode::Vector => Gate::Vector(linear(&store, &format!("{prefix}.gate"))?),
                };
                let layers = (0..=t.head.hidden.len())
                    .map(|k| linear(&store, &format!("{prefix}.head.{k}")))
                    .collect::<Result<Vec<_>>>()?;
                Ok(TaskModule {
                    gate,
                    head: Head {
                        layers,
                        activation: t.head.activation,
                        pooling: t.kind.is_sequence_level().then(|| t.pooling()),
                    },
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            spec,
            store,
            embeddings,
            layers,
            tasks,
        })
    }

    /// Runs the encoder and the tasks marked in `run` (all when `None`).
    pub fn forward(
        &self,
        batch: &DeviceBatch,
        mode: Mode,
        run: Option<&[bool]>,
    ) -> Result<ForwardPass> {
        let (mut x, embeddings) = self.embeddings.forward(batch, mode)?;
        let mut layers = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            let (out, saved) = layer.forward(&x, batch, mode)?;
            layers.push(saved);
            x = out;
        }
        let hidden = x;
        let tasks = self
            .tasks
            .iter()
            .enumerate()
            .map(|(i, task)| {
                if run.is_some_and(|r| !r[i]) {
                    return Ok(None);
                }
                let (gated, gate) = task.gate.forward(&hidden)?;
                let (logits, head) = task.head.forward(&gated, batch)?;
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
            embeddings,
            layers,
            tasks,
        })
    }

    /// The loss of task `i` on `logits` and its d(logits), scaled by the task's lambda.
    fn task_loss(&self, i: usize, logits: &Tensor, targets: &TaskTargets) -> Result<LossOutput> {
        let task = &self.spec.tasks[i];
        task.kind.loss(logits, targets, task.lambda)
    }

    /// Computes every labelled task's loss and back-propagates the joint loss, adding every
    /// parameter's gradient into the store (which the caller zeroes between steps). Tasks
    /// without labels in `targets` contribute nothing and get no gradient.
    pub fn backward(
        &self,
        pass: &ForwardPass,
        batch: &DeviceBatch,
        targets: &[TaskTargets],
        mode: Mode,
    ) -> Result<Losses> {
        let gpu = pass.hidden.gpu();
        let total = Tensor::zeros(gpu, &[1], DType::F32)?;
        let dhidden = Tensor::zeros(gpu, pass.hidden.shape(), DType::F32)?;
        let mut per_task = Vec::with_capacity(self.tasks.len());
        for (i, task) in self.tasks.iter().enumerate() {
            let labelled = targets.get(i).is_some_and(TaskTargets::any_labelled);
            let Some(tp) = pass.tasks[i].as_ref().filter(|_| labelled) else {
                per_task.push(None);
                continue;
            };
            let loss = self.task_loss(i, &tp.logits, &targets[i])?;
            accumulate(&total, &loss.loss, self.spec.tasks[i].lambda)?;
            if matches!(task.gate, Gate::None) {
                task.head.backward(
                    &tp.gated,
                    &loss.dlogits,
                    &tp.head,
                    batch,
                    GradInto::Add(&dhidden),
                )?;
            } else {
                let dgated = Tensor::empty(gpu, pass.hidden.shape(), DType::F32)?;
                task.head.backward(
                    &tp.gated,
                    &loss.dlogits,
                    &tp.head,
                    batch,
                    GradInto::Write(&dgated),
                )?;
                task.gate
                    .backward(&pass.hidden, &dgated, &tp.gate, &dhidden)?;
            }
            per_task.push(Some(loss.loss));
        }
        let mut grad = dhidden;
        for (layer, saved) in self.layers.iter().zip(&pass.layers).rev() {
            grad = layer.backward(&grad, saved, batch, mode)?;
        }
        self.embeddings
            .backward(&grad, &pass.embeddings, batch, mode)?;
        Ok(Losses { total, per_task })
    }
}
