//! A generation task's `decoder` and `generate` tables:
//!
//! ```toml
//! decoder = { layers = 2, heads = 12, intermediate = 1536, max_length = 48, init = "encoder" }
//! generate = { beam = 4, length_penalty = 1.0, max_new_tokens = 32 }
//! ```
//!
//! Unset decoder sizes follow the encoder (heads, intermediate); `layers` defaults to 2,
//! `max_length` (target tokens plus the end token) to 48 and `init` to `"encoder"` (each
//! decoder layer's self-attention and feed-forward copied from the encoder's layer of the same
//! index, cross-attention fresh; Rothe et al. 2020). `generate` sets how `predict` and `eval`
//! decode: greedy (`beam = 1`, the default) or beam search.

use serde::{Deserialize, Serialize};

/// How decoder layers start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DecoderInit {
    /// From the encoder's first layers (cross-attention fresh).
    #[default]
    Encoder,
    /// Randomly, N(0, 0.02) weights as BERT's initializer.
    Fresh,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DecoderConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heads: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intermediate: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<usize>,
    #[serde(default)]
    pub init: DecoderInit,
}

pub const DEFAULT_DECODER_LAYERS: usize = 2;
pub const DEFAULT_DECODER_MAX_LENGTH: usize = 48;

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateConfig {
    #[serde(default = "one")]
    pub beam: usize,
    #[serde(default = "unit")]
    pub length_penalty: f64,
    /// Default: the decoder's `max_length`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_new_tokens: Option<usize>,
}

fn one() -> usize {
    1
}

fn unit() -> f64 {
    1.0
}

impl Default for GenerateConfig {
    fn default() -> Self {
        Self {
            beam: 1,
            length_penalty: 1.0,
            max_new_tokens: None,
        }
    }
}
