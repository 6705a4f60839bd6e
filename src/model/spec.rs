//! The resolved model: encoder dimensions and tasks, and the list of every parameter with
//! its Hugging Face-compatible name, shape, initialization and optimizer group.

use anyhow::{Result, bail};

pub use crate::nn::encoder::{EncoderDims, layer_prefix};
pub use crate::nn::params::{Init, Owner, ParamSpec};

use crate::config::{DataSource, EncoderConfig, ModelConfig};
use crate::tasks::TaskSpec;

/// A model: encoder dimensions plus tasks.
#[derive(Clone, Debug)]
pub struct ModelSpec {
    pub encoder: EncoderDims,
    pub tasks: Vec<TaskSpec>,
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
            tasks: TaskSpec::all_from(config)?,
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
                    spec.to_config(sources.get(i).unwrap_or(&DataSource::default()))
                })
                .collect(),
            train: None,
            tune: None,
        }
    }

    /// Every parameter, encoder first (Hugging Face BertModel names), then each task's gate
    /// and head layers, as the layers declare them.
    pub fn param_specs(&self) -> Vec<ParamSpec> {
        super::multitask::Layers::declare(self).1
    }
}
