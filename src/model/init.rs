//! `taskgate init`: builds a model from a config file, with a fresh or pretrained encoder
//! and freshly initialized task gates and heads.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

use super::hf::load_pretrained;
use super::host::{HostParams, check_params, init_param};
use super::size::{available_host_memory, check_model_memory};
use super::spec::{EncoderDims, ModelSpec, Owner};
use super::store::ArenaLayout;
use crate::config::{DataSource, ModelConfig, TaskConfig, resolve_path};
use crate::data::splits::{infer_labels_from, needs_labels, resolve_all_balanced_weights};
use crate::tasks::TaskSpec;
use crate::tokenize::TextTokenizer;

/// A model ready to be written as a directory.
pub struct InitializedModel {
    pub spec: ModelSpec,
    /// Each task's data files (absolute where found), written beside the spec.
    pub sources: Vec<DataSource>,
    pub params: HostParams,
    pub tokenizer_json: Vec<u8>,
    /// Human-readable notes: where the encoder came from, what was ignored.
    pub notes: Vec<String>,
    /// Every file read to build it (config, pretrained files, tokenizer, label sources): a
    /// model directory written from it must not replace any of them.
    pub inputs: Vec<PathBuf>,
}

/// Fresh values for every parameter of `spec` not already in `params`.
pub fn init_missing(spec: &ModelSpec, params: &mut HostParams) -> Result<()> {
    for p in spec.param_specs() {
        if !params.contains_key(&p.name) {
            let seed = match p.owner {
                Owner::Encoder => spec.encoder.seed,
                Owner::Task(_) => spec.encoder.seed ^ 0x5441_534b,
            };
            params.insert(p.name.clone(), init_param(&p, seed)?);
        }
    }
    Ok(())
}

/// Builds the model a config file describes (no adapter chosen yet).
pub fn init_model(config_path: &Path) -> Result<InitializedModel> {
    let config = ModelConfig::load(config_path)?;
    // No adapter yet: every parameter must at least fit the largest arena of any adapter.
    let cap = (super::store::MAX_ARENA_BYTES / 4) as usize;
    init_from_config(&config, config_path, Some(cap))
}

/// Builds the model `config` describes; relative paths in it are resolved against
/// `config_path`'s directory, which also names the file in errors. With `binding_elements`
/// (the largest buffer binding of the adapter that will run it, in f32 elements), a
/// parameter that cannot be bound is refused before anything is allocated.
pub fn init_from_config(
    config: &ModelConfig,
    config_path: &Path,
    binding_elements: Option<usize>,
) -> Result<InitializedModel> {
    let mut inputs = vec![config_path.to_path_buf()];
    let mut tasks = TaskSpec::all_in(config, config_path)?;
    let mut sources: Vec<DataSource> = config.tasks.iter().map(TaskConfig::source).collect();
    // Data paths found beside the config (or in the working directory) are stored absolute,
    // so that `eval` and `train` find them from the model directory wherever it is used.
    for source in &mut sources {
        for slot in [&mut source.train, &mut source.dev, &mut source.test] {
            if let Some(path) = slot.as_ref()
                && let Ok(found) = resolve_path(config_path, path, "data file")
                && let Ok(full) = std::fs::canonicalize(found)
            {
                *slot = Some(full);
            }
        }
    }
    for (task, source) in tasks.iter_mut().zip(&sources) {
        if !needs_labels(task) {
            continue;
        }
        if let Some(train) = source.train.clone() {
            let what = format!("task '{}' train file", task.name);
            let path = resolve_path(config_path, &train, &what)
                .map_err(|e| anyhow!("{}: {e}", config_path.display()))?;
            infer_labels_from(task, source, &path)?;
            inputs.push(path);
        }
    }
    resolve_all_balanced_weights(&mut tasks, &sources)
        .map_err(|e| anyhow!("{}: {e}", config_path.display()))?;
    let e = &config.encoder;
    let in_file = |msg: String| anyhow!("{}: {msg}", config_path.display());
    let mut notes = Vec::new();
    let pretrained = match &e.pretrained {
        Some(p) => {
            let dir = resolve_path(config_path, p, "[encoder] pretrained directory")
                .map_err(|e| in_file(e.to_string()))?;
            let loaded = load_pretrained(&dir, e.layers)?;
            inputs.extend(["config.json", "model.safetensors"].map(|f| dir.join(f)));
            for (field, ours, theirs) in [
                ("hidden", e.hidden, loaded.dims.hidden),
                ("heads", e.heads, loaded.dims.heads),
                ("intermediate", e.intermediate, loaded.dims.intermediate),
                ("max_positions", e.max_positions, loaded.dims.max_positions),
                ("vocab_size", e.vocab_size, loaded.dims.vocab_size),
                (
                    "type_vocab_size",
                    e.type_vocab_size,
                    loaded.dims.type_vocab_size,
                ),
            ] {
                if ours.is_some_and(|v| v != theirs) {
                    return Err(in_file(format!(
                        "[encoder] {field} = {} conflicts with the pretrained model ({theirs}); \
                         remove it (it is for fresh encoders)",
                        ours.unwrap()
                    )));
                }
            }
            notes.push(format!(
                "encoder: {} layer(s) of {} from {}",
                loaded.dims.layers,
                loaded.dims.hidden,
                dir.display()
            ));
            if !loaded.ignored.is_empty() {
                notes.push(format!(
                    "not used from the checkpoint: {}",
                    summarize_unused(&loaded.ignored)
                ));
            }
            Some(loaded)
        }
        None => None,
    };
    let tokenizer_path = match (
        &e.tokenizer,
        pretrained.as_ref().and_then(|p| p.tokenizer.clone()),
    ) {
        (Some(t), _) => resolve_path(config_path, t, "[encoder] tokenizer")
            .map_err(|e| in_file(e.to_string()))?,
        (None, Some(t)) => t,
        (None, None) => {
            return Err(in_file(
                "[encoder] tokenizer is required (a tokenizer.json) unless the pretrained \
                 directory has one"
                    .into(),
            ));
        }
    };
    let tokenizer_json = std::fs::read(&tokenizer_path)
        .with_context(|| format!("cannot read the tokenizer {}", tokenizer_path.display()))?;
    inputs.push(tokenizer_path.clone());
    let probe = TextTokenizer::from_bytes(&tokenizer_json, 8)
        .map_err(|err| anyhow!("{}: {err}", tokenizer_path.display()))?;
    let tokenizer_vocab = probe.vocab_size();

    let (mut dims, mut params) = match pretrained {
        Some(p) => (p.dims, p.params),
        None => (
            EncoderDims {
                vocab_size: e.vocab_size.unwrap_or(tokenizer_vocab),
                hidden: e.hidden.unwrap_or_default(),
                layers: e.layers.unwrap_or_default(),
                heads: e.heads.unwrap_or_default(),
                intermediate: e.intermediate.unwrap_or_default(),
                max_positions: e.max_positions.unwrap_or_default(),
                type_vocab_size: e.type_vocab_size.unwrap_or(2),
                layer_norm_eps: e.layer_norm_eps.unwrap_or(1e-12),
                dropout: 0.0,
                attention_dropout: 0.0,
                seed: 0,
                max_length: 0,
            },
            HostParams::new(),
        ),
    };
    if tokenizer_vocab > dims.vocab_size {
        return Err(in_file(format!(
            "the tokenizer {} has {tokenizer_vocab} tokens but the encoder's vocabulary has {}",
            tokenizer_path.display(),
            dims.vocab_size
        )));
    }
    if let Some(eps) = e.layer_norm_eps {
        dims.layer_norm_eps = eps;
    }
    dims.dropout = e.dropout;
    dims.attention_dropout = e.attention_dropout.unwrap_or(e.dropout);
    dims.seed = e.seed;
    dims.max_length = e.max_length.unwrap_or(dims.max_positions);
    if dims.max_length > dims.max_positions {
        bail!(
            "{}: [encoder] max_length ({}) exceeds max_positions ({})",
            config_path.display(),
            dims.max_length,
            dims.max_positions
        );
    }
    let spec = ModelSpec {
        encoder: dims,
        tasks,
    };
    // Sizes are checked before the fresh parameters are allocated: the host holds them about
    // twice (the values, then the file or the GPU upload).
    check_model_memory(
        &spec,
        2,
        available_host_memory(),
        &config_path.display().to_string(),
    )?;
    if let Some(cap) = binding_elements {
        ArenaLayout::plan(&spec.param_specs(), cap)
            .map_err(|e| anyhow!("{}: {e}", config_path.display()))?;
    }
    init_missing(&spec, &mut params)?;
    check_params(&params, &spec.param_specs(), "the initialized model")?;
    let count: usize = params.values().map(|t| t.data.len()).sum();
    notes.push(format!("{count} parameters, {} task(s)", spec.tasks.len()));
    Ok(InitializedModel {
        spec,
        sources,
        params,
        tokenizer_json,
        notes,
        inputs,
    })
}

/// Lists unused checkpoint tensors, folding the layers beyond those kept into one entry.
fn summarize_unused(names: &[String]) -> String {
    let layer_of = |n: &str| {
        n.trim_start_matches("bert.")
            .strip_prefix("encoder.layer.")
            .and_then(|rest| rest.split('.').next())
            .and_then(|i| i.parse::<usize>().ok())
    };
    let layers: Vec<usize> = names.iter().filter_map(|n| layer_of(n)).collect();
    let mut parts: Vec<String> = names
        .iter()
        .filter(|n| layer_of(n).is_none())
        .cloned()
        .collect();
    if let (Some(lo), Some(hi)) = (layers.iter().min(), layers.iter().max()) {
        parts.insert(
            0,
            format!(
                "encoder.layer.{lo}..={hi} ({} tensors of the layers not kept)",
                layers.len()
            ),
        );
    }
    parts.join(", ")
}
