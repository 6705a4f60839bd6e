//! The resolved model: encoder dimensions and tasks, and the list of every parameter with
//! its Hugging Face-compatible name, shape, initialization and optimizer group.

use anyhow::{Result, bail};

pub use crate::nn::encoder::{EncoderDims, layer_prefix};
pub use crate::nn::params::{Init, Owner, ParamSpec};

use crate::config::generation::{DEFAULT_DECODER_LAYERS, DEFAULT_DECODER_MAX_LENGTH};
use crate::config::{DataSource, DecoderInit, EncoderConfig, ModelConfig};
use crate::nn::decoder::DecoderDims;
use crate::nn::decoder_layer::DecoderLayerDims;
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
        let mut spec = Self {
            encoder,
            tasks: TaskSpec::all_from(config)?,
        };
        spec.resolve_decoders();
        spec.check_decoders()?;
        Ok(spec)
    }

    /// Writes every decoder's sizes into its task (those unset follow the encoder), so that
    /// the data, the layers and the stored `taskgate.toml` agree on them.
    pub fn resolve_decoders(&mut self) {
        for i in 0..self.tasks.len() {
            if let Some(dims) = self.decoder_dims(&self.tasks[i])
                && let Some(config) = self.tasks[i].decoder.as_mut()
            {
                config.layers = Some(dims.layers);
                config.heads = Some(dims.layer.heads);
                config.intermediate = Some(dims.layer.intermediate);
                config.max_length = Some(dims.max_length);
            }
        }
    }

    /// The decoder of task `task` (generation tasks), its unset sizes following the encoder:
    /// heads and intermediate width as the encoder's, 2 layers, max_length 48 (or the
    /// encoder's max_positions when fewer).
    pub fn decoder_dims(&self, task: &TaskSpec) -> Option<DecoderDims> {
        let d = task.decoder.as_ref()?;
        let e = &self.encoder;
        Some(DecoderDims {
            vocab: e.vocab_size,
            layers: d.layers.unwrap_or(DEFAULT_DECODER_LAYERS),
            max_length: d
                .max_length
                .unwrap_or(DEFAULT_DECODER_MAX_LENGTH.min(e.max_positions)),
            layer: DecoderLayerDims {
                hidden: e.hidden,
                heads: d.heads.unwrap_or(e.heads),
                intermediate: d.intermediate.unwrap_or(e.intermediate),
                layer_norm_eps: e.layer_norm_eps as f32,
                dropout: e.dropout,
                attention_dropout: e.attention_dropout,
            },
        })
    }

    /// Checks every decoder against the encoder: its heads split the width, and a decoder
    /// warm-started from the encoder (`init = "encoder"`) has no more layers, no other
    /// feed-forward width and no more positions than the encoder it copies.
    pub fn check_decoders(&self) -> Result<()> {
        let e = &self.encoder;
        for task in &self.tasks {
            let (Some(config), Some(dims)) = (&task.decoder, self.decoder_dims(task)) else {
                continue;
            };
            let name = &task.name;
            let heads = dims.layer.heads;
            if heads == 0 || !e.hidden.is_multiple_of(heads) {
                bail!(
                    "task '{name}': decoder.heads ({heads}) does not divide the hidden width ({})",
                    e.hidden
                );
            }
            if config.init != DecoderInit::Encoder {
                continue;
            }
            let fresh = "or set decoder.init = \"fresh\"";
            if dims.layers > e.layers {
                bail!(
                    "task '{name}': decoder.layers = {} with init = \"encoder\" copies as many \
                     encoder layers, but the encoder has {}; use at most {} {fresh}",
                    dims.layers,
                    e.layers,
                    e.layers
                );
            }
            if dims.layer.intermediate != e.intermediate {
                bail!(
                    "task '{name}': decoder.intermediate = {} with init = \"encoder\" must \
                     equal the encoder's ({}) {fresh}",
                    dims.layer.intermediate,
                    e.intermediate
                );
            }
            if dims.max_length > e.max_positions {
                bail!(
                    "task '{name}': decoder.max_length = {} with init = \"encoder\" exceeds \
                     the encoder's max_positions ({}) {fresh}",
                    dims.max_length,
                    e.max_positions
                );
            }
        }
        Ok(())
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
                    let mlp = !t.kind.generates_text();
                    let spec = TaskSpec {
                        pooling: (mlp && t.kind.is_sequence_level()).then(|| t.pooling()),
                        outputs: (mlp && !t.kind.named_outputs()).then(|| t.output_width()),
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
