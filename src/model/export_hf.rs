//! A model as a Hugging Face BERT directory (`taskgate export --format hf`): `config.json`,
//! `model.safetensors` with BertModel's names, `tokenizer.json` with `tokenizer_config.json`,
//! `special_tokens_map.json` and (WordPiece) `vocab.txt`, so that
//! `transformers.AutoModel.from_pretrained` and `AutoTokenizer.from_pretrained` load it; and
//! beside it the tasks, `taskgate_tasks.safetensors` plus `taskgate.toml`, so that taskgate
//! reads the directory back as a model ([`ModelDir::load`] merges the two weight files).
//!
//! BertModel has a pooler (`pooler.dense`, tanh over [CLS]) that taskgate never trains; it is
//! written freshly initialized as Hugging Face initializes it (N(0, 0.02) weight, zero bias),
//! so the directory loads with no missing weight, and `pooler_output` means nothing:
//! use `last_hidden_state` (sentence-transformers pools it by mean).

use anyhow::{Context, Result, anyhow};
use serde_json::{Value, json};

use super::dir::{CONFIG_FILE, ModelDir, TOKENIZER_FILE, WEIGHTS_FILE};
use super::host::{HostTensor, OutTensor, init_param, serialize_safetensors};
use super::spec::{Init, Owner, ParamSpec};
use crate::config::DataSource;

/// The file beside the Hugging Face weights that holds the task gates and heads.
pub const TASKS_FILE: &str = "taskgate_tasks.safetensors";

/// The pooler tensors a BertModel checkpoint holds and taskgate does not train.
pub const POOLER_PREFIX: &str = "pooler.";

/// Every file of the export of `model` (`sources` as its `taskgate.toml` names them), by name.
pub fn export_files(model: &ModelDir, sources: &[DataSource]) -> Result<Vec<(String, Vec<u8>)>> {
    let spec = &model.spec;
    let specs = spec.param_specs();
    let (encoder, tasks): (Vec<&ParamSpec>, Vec<&ParamSpec>) =
        specs.iter().partition(|p| p.owner == Owner::Encoder);
    let d = spec.encoder.hidden;
    let pooler = pooler_params(d, spec.encoder.seed)?;
    let mut weights: Vec<(String, OutTensor<'_>)> = Vec::new();
    for p in &encoder {
        let t = &model.params[&p.name];
        weights.push((p.name.clone(), OutTensor::F32(&t.shape, &t.data)));
    }
    for (name, t) in &pooler {
        weights.push((name.clone(), OutTensor::F32(&t.shape, &t.data)));
    }
    let task_tensors: Vec<(String, OutTensor<'_>)> = tasks
        .iter()
        .map(|p| {
            let t = &model.params[&p.name];
            (p.name.clone(), OutTensor::F32(&t.shape, &t.data))
        })
        .collect();
    let tokenizer: Value = serde_json::from_slice(&model.tokenizer_json)
        .context("the model's tokenizer.json is not JSON")?;
    let special = special_tokens(&tokenizer);
    let pad_id = model.tokenizer.pad_id();
    let e = &spec.encoder;
    // f32 settings as the decimals they were written as (0.1, not 0.10000000149011612).
    let decimal = |x: f32| x.to_string().parse::<f64>().unwrap_or(x as f64);
    let config = json!({
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": e.vocab_size,
        "hidden_size": e.hidden,
        "num_hidden_layers": e.layers,
        "num_attention_heads": e.heads,
        "intermediate_size": e.intermediate,
        "hidden_act": "gelu",
        "hidden_dropout_prob": decimal(e.dropout),
        "attention_probs_dropout_prob": decimal(e.attention_dropout),
        "max_position_embeddings": e.max_positions,
        "type_vocab_size": e.type_vocab_size,
        "initializer_range": 0.02,
        "layer_norm_eps": e.layer_norm_eps,
        "pad_token_id": pad_id,
        "position_embedding_type": "absolute",
        "use_cache": true,
        "classifier_dropout": null,
        "torch_dtype": "float32",
    });
    let lowercase = tokenizer["normalizer"]["lowercase"]
        .as_bool()
        .unwrap_or(false);
    let wordpiece = tokenizer["model"]["type"] == "WordPiece";
    let mut tokenizer_config = json!({
        "tokenizer_class": if wordpiece { "BertTokenizer" } else { "PreTrainedTokenizerFast" },
        "do_lower_case": lowercase,
        "model_max_length": e.max_length,
        "clean_up_tokenization_spaces": true,
        "tokenize_chinese_chars": true,
        "strip_accents": tokenizer["normalizer"]["strip_accents"].clone(),
    });
    for (role, token) in &special {
        tokenizer_config[role] = json!(token);
    }
    let special_map: serde_json::Map<String, Value> = special
        .iter()
        .map(|(role, token)| (role.clone(), json!(token)))
        .collect();
    let pretty = |v: &Value| -> Result<Vec<u8>> {
        let mut text = serde_json::to_string_pretty(v)?;
        text.push('\n');
        Ok(text.into_bytes())
    };
    let mut files = vec![
        ("config.json".to_string(), pretty(&config)?),
        (WEIGHTS_FILE.to_string(), serialize_safetensors(&weights)?),
        (
            TASKS_FILE.to_string(),
            serialize_safetensors(&task_tensors)?,
        ),
        (TOKENIZER_FILE.to_string(), model.tokenizer_json.clone()),
        (
            "tokenizer_config.json".to_string(),
            pretty(&tokenizer_config)?,
        ),
        (
            "special_tokens_map.json".to_string(),
            pretty(&Value::Object(special_map))?,
        ),
    ];
    if wordpiece {
        files.push(("vocab.txt".to_string(), vocab_txt(&tokenizer)?));
    }
    let toml = toml::to_string(&spec.to_config(sources))?;
    let header = "# taskgate model directory in Hugging Face form: the encoder in model.safetensors \
                  (BertModel names, pooler untrained), the tasks in taskgate_tasks.safetensors.\n\n";
    files.push((
        CONFIG_FILE.to_string(),
        format!("{header}{toml}").into_bytes(),
    ));
    Ok(files)
}

/// BertModel's pooler, freshly initialized (seeded by the model's seed).
fn pooler_params(hidden: usize, seed: u64) -> Result<Vec<(String, HostTensor)>> {
    let weight = ParamSpec {
        name: "pooler.dense.weight".into(),
        shape: vec![hidden, hidden],
        owner: Owner::Encoder,
        decay: true,
        packed: false,
        init: Init::Normal(0.02),
    };
    let bias = ParamSpec {
        name: "pooler.dense.bias".into(),
        shape: vec![hidden],
        init: Init::Zeros,
        ..weight.clone()
    };
    [weight, bias]
        .iter()
        .map(|p| Ok((p.name.clone(), init_param(p, seed)?)))
        .collect()
}

/// The special tokens of a BERT tokenizer by their Hugging Face roles (`cls_token`, ...),
/// those the tokenizer's added tokens hold.
fn special_tokens(tokenizer: &Value) -> Vec<(String, String)> {
    let added: Vec<&str> = tokenizer["added_tokens"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|t| t["special"].as_bool().unwrap_or(false))
                .filter_map(|t| t["content"].as_str())
                .collect()
        })
        .unwrap_or_default();
    [
        ("unk_token", "[UNK]"),
        ("sep_token", "[SEP]"),
        ("pad_token", "[PAD]"),
        ("cls_token", "[CLS]"),
        ("mask_token", "[MASK]"),
    ]
    .into_iter()
    .filter(|(_, token)| added.contains(token))
    .map(|(role, token)| (role.to_string(), token.to_string()))
    .collect()
}

/// `vocab.txt` of a WordPiece tokenizer: one token per line, in id order.
fn vocab_txt(tokenizer: &Value) -> Result<Vec<u8>> {
    let vocab = tokenizer["model"]["vocab"]
        .as_object()
        .ok_or_else(|| anyhow!("the WordPiece tokenizer.json has no model.vocab"))?;
    let mut tokens: Vec<Option<&str>> = vec![None; vocab.len()];
    for (token, id) in vocab {
        let id = id
            .as_u64()
            .filter(|&i| (i as usize) < tokens.len())
            .ok_or_else(|| {
                anyhow!("tokenizer.json: the id of {token:?} is not below the vocabulary size")
            })?;
        tokens[id as usize] = Some(token);
    }
    let mut text = String::new();
    for (id, token) in tokens.iter().enumerate() {
        let token = token.ok_or_else(|| anyhow!("tokenizer.json: no token has id {id}"))?;
        text.push_str(token);
        text.push('\n');
    }
    Ok(text.into_bytes())
}
