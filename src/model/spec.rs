//! The resolved model: encoder dimensions and tasks, and the list of every parameter with
//! its Hugging Face-compatible name, shape, initialization and optimizer group.

use anyhow::{Result, bail};

use crate::config::{DataSource, EncoderConfig, GateMode, ModelConfig, TaskConfig, TaskSpec};

/// Encoder dimensions and regularization, fully resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct EncoderDims {
    pub vocab_size: usize,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub max_positions: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    pub dropout: f32,
    pub attention_dropout: f32,
    pub seed: u64,
    /// Longest tokenized input (<= max_positions).
    pub max_length: usize,
}

impl EncoderDims {
    pub fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }
}

/// A model: encoder dimensions plus tasks.
#[derive(Clone, Debug)]
pub struct ModelSpec {
    pub encoder: EncoderDims,
    pub tasks: Vec<TaskSpec>,
}

/// Which part of the model a parameter belongs to (one optimizer group per owner and decay).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Owner {
    Encoder,
    Task(usize),
}

/// How a fresh parameter is initialized (BERT's scheme: N(0, 0.02) weights, zero biases,
/// unit LayerNorm scales).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    Normal(f32),
    Zeros,
    Ones,
}

/// One parameter.
#[derive(Clone, Debug)]
pub struct ParamSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub owner: Owner,
    /// Weight decay applies (matrices and embeddings; not biases nor LayerNorm).
    pub decay: bool,
    /// Stored right after the previous parameter of its group with no padding, so that
    /// Q, K and V form one `[3d, d]` matrix (and one `[3d]` bias).
    pub packed: bool,
    pub init: Init,
}

impl ParamSpec {
    /// Elements (saturating: a size from a hand-edited file never overflows; such sizes are
    /// refused by [`super::size`] before anything is allocated).
    pub fn numel(&self) -> usize {
        self.shape.iter().fold(1usize, |n, &d| n.saturating_mul(d))
    }
}

/// Name prefix of encoder layer `i` (as Hugging Face's BertModel).
pub fn layer_prefix(i: usize) -> String {
    format!("encoder.layer.{i}")
}

impl ModelSpec {
    /// The spec of a model directory's `taskgate.toml`, whose `[encoder]` lists every
    /// dimension.
    pub fn from_config(config: &ModelConfig) -> Result<Self> {
        let e = &config.encoder;
        let need = |field: &str, v: Option<usize>| match v {
            Some(v) => Ok(v),
            None => bail!("[encoder] {field} is missing"),
        };
        let max_positions = need("max_positions", e.max_positions)?;
        let encoder = EncoderDims {
            vocab_size: need("vocab_size", e.vocab_size)?,
            hidden: need("hidden", e.hidden)?,
            layers: need("layers", e.layers)?,
            heads: need("heads", e.heads)?,
            intermediate: need("intermediate", e.intermediate)?,
            max_positions,
            type_vocab_size: e.type_vocab_size.unwrap_or(2),
            layer_norm_eps: e.layer_norm_eps.unwrap_or(1e-12),
            dropout: e.dropout,
            attention_dropout: e.attention_dropout.unwrap_or(e.dropout),
            seed: e.seed,
            max_length: e.max_length.unwrap_or(max_positions),
        };
        if encoder.max_length > max_positions {
            bail!(
                "[encoder] max_length ({}) exceeds max_positions ({max_positions})",
                encoder.max_length
            );
        }
        Ok(Self {
            encoder,
            tasks: config.tasks.iter().map(TaskConfig::spec).collect(),
        })
    }

    /// The `taskgate.toml` describing this model (tokenizer stored beside it), each task
    /// reading its data from `sources` (one per task; none: no data files).
    pub fn to_config(&self, sources: &[DataSource]) -> ModelConfig {
        let d = &self.encoder;
        ModelConfig {
            encoder: EncoderConfig {
                pretrained: None,
                layers: Some(d.layers),
                hidden: Some(d.hidden),
                heads: Some(d.heads),
                intermediate: Some(d.intermediate),
                max_positions: Some(d.max_positions),
                vocab_size: Some(d.vocab_size),
                type_vocab_size: Some(d.type_vocab_size),
                layer_norm_eps: Some(d.layer_norm_eps),
                tokenizer: Some("tokenizer.json".into()),
                max_length: Some(d.max_length),
                dropout: d.dropout,
                attention_dropout: Some(d.attention_dropout),
                seed: d.seed,
            },
            tasks: self
                .tasks
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let spec = TaskSpec {
                        pooling: t.kind.is_sequence_level().then(|| t.pooling()),
                        outputs: (!t.kind.named_outputs()).then(|| t.output_width()),
                        ..t.clone()
                    };
                    let none = DataSource::default();
                    TaskConfig::from_parts(&spec, sources.get(i).unwrap_or(&none))
                })
                .collect(),
            train: None,
        }
    }

    pub fn task_index(&self, name: &str) -> Option<usize> {
        self.tasks.iter().position(|t| t.name == name)
    }

    /// Every parameter, encoder first (Hugging Face BertModel names), then each task's gate
    /// and head layers.
    pub fn param_specs(&self) -> Vec<ParamSpec> {
        let d = &self.encoder;
        let h = d.hidden;
        let mut specs = Vec::new();
        let mut push = |name: String, shape: Vec<usize>, owner: Owner, init: Init, packed: bool| {
            let decay = !name.contains("LayerNorm") && !name.ends_with(".bias");
            specs.push(ParamSpec {
                name,
                shape,
                owner,
                decay,
                packed,
                init,
            });
        };
        let enc = Owner::Encoder;
        let w = Init::Normal(0.02);
        push(
            "embeddings.word_embeddings.weight".into(),
            vec![d.vocab_size, h],
            enc,
            w,
            false,
        );
        push(
            "embeddings.position_embeddings.weight".into(),
            vec![d.max_positions, h],
            enc,
            w,
            false,
        );
        push(
            "embeddings.token_type_embeddings.weight".into(),
            vec![d.type_vocab_size, h],
            enc,
            w,
            false,
        );
        push(
            "embeddings.LayerNorm.weight".into(),
            vec![h],
            enc,
            Init::Ones,
            false,
        );
        push(
            "embeddings.LayerNorm.bias".into(),
            vec![h],
            enc,
            Init::Zeros,
            false,
        );
        for i in 0..d.layers {
            let p = layer_prefix(i);
            for (k, part) in ["query", "key", "value"].iter().enumerate() {
                push(
                    format!("{p}.attention.self.{part}.weight"),
                    vec![h, h],
                    enc,
                    w,
                    k > 0,
                );
                push(
                    format!("{p}.attention.self.{part}.bias"),
                    vec![h],
                    enc,
                    Init::Zeros,
                    k > 0,
                );
            }
            push(
                format!("{p}.attention.output.dense.weight"),
                vec![h, h],
                enc,
                w,
                false,
            );
            push(
                format!("{p}.attention.output.dense.bias"),
                vec![h],
                enc,
                Init::Zeros,
                false,
            );
            push(
                format!("{p}.attention.output.LayerNorm.weight"),
                vec![h],
                enc,
                Init::Ones,
                false,
            );
            push(
                format!("{p}.attention.output.LayerNorm.bias"),
                vec![h],
                enc,
                Init::Zeros,
                false,
            );
            push(
                format!("{p}.intermediate.dense.weight"),
                vec![d.intermediate, h],
                enc,
                w,
                false,
            );
            push(
                format!("{p}.intermediate.dense.bias"),
                vec![d.intermediate],
                enc,
                Init::Zeros,
                false,
            );
            push(
                format!("{p}.output.dense.weight"),
                vec![h, d.intermediate],
                enc,
                w,
                false,
            );
            push(
                format!("{p}.output.dense.bias"),
                vec![h],
                enc,
                Init::Zeros,
                false,
            );
            push(
                format!("{p}.output.LayerNorm.weight"),
                vec![h],
                enc,
                Init::Ones,
                false,
            );
            push(
                format!("{p}.output.LayerNorm.bias"),
                vec![h],
                enc,
                Init::Zeros,
                false,
            );
        }
        for (ti, task) in self.tasks.iter().enumerate() {
            let owner = Owner::Task(ti);
            let name = &task.name;
            let gate_out = match task.gate {
                GateMode::Scalar => Some(1),
                GateMode::Vector => Some(h),
                GateMode::None => None,
            };
            if let Some(out) = gate_out {
                push(
                    format!("tasks.{name}.gate.weight"),
                    vec![out, h],
                    owner,
                    w,
                    false,
                );
                push(
                    format!("tasks.{name}.gate.bias"),
                    vec![out],
                    owner,
                    Init::Zeros,
                    false,
                );
            }
            let mut width = h;
            let widths = task
                .head
                .hidden
                .iter()
                .copied()
                .chain([task.output_width()]);
            for (k, out) in widths.enumerate() {
                push(
                    format!("tasks.{name}.head.{k}.weight"),
                    vec![out, width],
                    owner,
                    w,
                    false,
                );
                push(
                    format!("tasks.{name}.head.{k}.bias"),
                    vec![out],
                    owner,
                    Init::Zeros,
                    false,
                );
                width = out;
            }
        }
        specs
    }
}
