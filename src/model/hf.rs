//! Loading a Hugging Face BERT directory: `config.json` for the dimensions and
//! `model.safetensors` for the encoder weights (optionally only the first k layers).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;

use super::host::{FileTensor, HostParams, HostTensor, check_finite, read_safetensors};
use super::spec::{EncoderDims, ModelSpec, Owner};

/// The fields of a Hugging Face BERT `config.json` that taskgate reads.
#[derive(Debug, Deserialize)]
struct HfConfig {
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    max_position_embeddings: usize,
    vocab_size: usize,
    #[serde(default = "two")]
    type_vocab_size: usize,
    #[serde(default = "bert_eps")]
    layer_norm_eps: f64,
    #[serde(default = "gelu")]
    hidden_act: String,
    #[serde(default = "absolute")]
    position_embedding_type: String,
}

fn two() -> usize {
    2
}
fn bert_eps() -> f64 {
    1e-12
}
fn gelu() -> String {
    "gelu".into()
}
fn absolute() -> String {
    "absolute".into()
}

/// A pretrained encoder read from disk.
pub struct Pretrained {
    /// Dimensions (dropout, seed and max_length are left for the caller to set).
    pub dims: EncoderDims,
    /// The encoder's parameters under taskgate's (BertModel) names.
    pub params: HostParams,
    /// Tensors in the file that the encoder does not use (pooler, heads, dropped layers).
    pub ignored: Vec<String>,
    /// The directory's `tokenizer.json`, when present.
    pub tokenizer: Option<PathBuf>,
}

/// Loads `dir`, keeping the first `keep_layers` layers (all when `None`).
pub fn load_pretrained(dir: &Path, keep_layers: Option<usize>) -> Result<Pretrained> {
    let config_path = dir.join("config.json");
    let text = std::fs::read_to_string(&config_path).with_context(|| {
        format!(
            "{} is not a Hugging Face BERT directory (no readable config.json)",
            dir.display()
        )
    })?;
    let hf: HfConfig =
        serde_json::from_str(&text).map_err(|e| anyhow!("{}: {e}", config_path.display()))?;
    if hf.hidden_act != "gelu" {
        bail!(
            "{}: hidden_act \"{}\" is not supported (taskgate implements BERT's exact \"gelu\")",
            config_path.display(),
            hf.hidden_act
        );
    }
    if hf.position_embedding_type != "absolute" {
        bail!(
            "{}: position_embedding_type \"{}\" is not supported (only \"absolute\")",
            config_path.display(),
            hf.position_embedding_type
        );
    }
    if hf.num_attention_heads == 0 || !hf.hidden_size.is_multiple_of(hf.num_attention_heads) {
        bail!(
            "{}: hidden_size must be a multiple of num_attention_heads",
            config_path.display()
        );
    }
    let layers = match keep_layers {
        Some(k) if k > hf.num_hidden_layers => bail!(
            "[encoder] layers = {k}, but the pretrained model {} has only {} layers",
            dir.display(),
            hf.num_hidden_layers
        ),
        Some(k) => k,
        None => hf.num_hidden_layers,
    };
    let dims = EncoderDims {
        vocab_size: hf.vocab_size,
        hidden: hf.hidden_size,
        layers,
        heads: hf.num_attention_heads,
        intermediate: hf.intermediate_size,
        max_positions: hf.max_position_embeddings,
        type_vocab_size: hf.type_vocab_size,
        layer_norm_eps: hf.layer_norm_eps,
        dropout: 0.0,
        attention_dropout: 0.0,
        seed: 0,
        max_length: hf.max_position_embeddings,
    };
    let weights_path = dir.join("model.safetensors");
    let mut file = read_safetensors(&weights_path)?;
    let (params, ignored) =
        take_encoder(&mut file, &dims).map_err(|e| anyhow!("{}: {e}", weights_path.display()))?;
    check_finite(
        &params,
        &weights_path.display().to_string(),
        "the pretrained weights are damaged: fetch the model again",
    )?;
    let tokenizer = Some(dir.join("tokenizer.json")).filter(|p| p.exists());
    Ok(Pretrained {
        dims,
        params,
        ignored,
        tokenizer,
    })
}

/// The file's name for one of our encoder names: an optional `bert.` prefix, and the old
/// TensorFlow-converted `LayerNorm.gamma` / `.beta` spelling.
fn candidates(name: &str) -> Vec<String> {
    let mut names = vec![name.to_string()];
    if let Some(stem) = name.strip_suffix("LayerNorm.weight") {
        names.push(format!("{stem}LayerNorm.gamma"));
    }
    if let Some(stem) = name.strip_suffix("LayerNorm.bias") {
        names.push(format!("{stem}LayerNorm.beta"));
    }
    let prefixed: Vec<String> = names.iter().map(|n| format!("bert.{n}")).collect();
    names.extend(prefixed);
    names
}

fn take_encoder(
    file: &mut BTreeMap<String, FileTensor>,
    dims: &EncoderDims,
) -> Result<(HostParams, Vec<String>)> {
    let spec = ModelSpec {
        encoder: dims.clone(),
        tasks: Vec::new(),
    };
    let mut params = HostParams::new();
    let mut problems = Vec::new();
    for p in spec
        .param_specs()
        .into_iter()
        .filter(|p| p.owner == Owner::Encoder)
    {
        let found = candidates(&p.name)
            .into_iter()
            .find(|c| file.contains_key(c));
        match found.and_then(|key| file.remove(&key).map(|t| (key, t))) {
            None => problems.push(format!("missing {} {:?}", p.name, p.shape)),
            Some((key, FileTensor::Other(_, dtype))) => problems.push(format!(
                "dtype of {key}: {dtype:?} is not a floating-point type"
            )),
            Some((key, FileTensor::Float(t, _))) if t.shape != p.shape => problems.push(format!(
                "shape of {key}: expected {:?}, found {:?}",
                p.shape, t.shape
            )),
            Some((_, FileTensor::Float(t, _))) => {
                params.insert(
                    p.name.clone(),
                    HostTensor {
                        shape: t.shape,
                        data: t.data,
                    },
                );
            }
        }
    }
    if !problems.is_empty() {
        let n = problems.len();
        return Err(crate::error::listed(problems, 3, |first| {
            format!("the encoder weights do not match config.json ({n} problem(s)): {first}")
        }));
    }
    Ok((params, file.keys().cloned().collect()))
}
