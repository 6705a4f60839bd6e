//! `taskgate init`: builds a model from a config file, with a fresh or pretrained encoder
//! and freshly initialized task gates and heads.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

use super::dir::ModelDir;
use super::hf::load_pretrained;
use super::host::{HostParams, check_params, init_param};
use super::size::{available_host_memory, check_model_memory};
use super::spec::{EncoderDims, ModelSpec, Owner, layer_prefix};
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
    init_with_source(config, config_path, binding_elements, None)
}

/// A trained model whose encoder and matching tasks a new model starts from (`[train]
/// init_from`): the model, and the directory it was read from (named in notes and errors).
pub struct InitSource<'a> {
    pub model: &'a ModelDir,
    pub dir: &'a Path,
}

/// [`init_from_config`], the encoder (dimensions, weights, tokenizer) and every unchanged
/// task taken from `source` when given (see `model::transfer`); `[encoder]` settings that
/// size the encoder must then agree with it, and `pretrained` is not used.
pub fn init_with_source(
    config: &ModelConfig,
    config_path: &Path,
    binding_elements: Option<usize>,
    source: Option<InitSource<'_>>,
) -> Result<InitializedModel> {
    let mut inputs = vec![config_path.to_path_buf()];
    if source.is_none()
        && config
            .train
            .as_ref()
            .is_some_and(|t| !t.reinit.is_empty() && t.init_from.is_none())
    {
        bail!(
            "{}: [train] reinit names tasks to start fresh instead of taking them from \
             init_from, but init_from is not set (give --init-from DIR)",
            config_path.display()
        );
    }
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
    // `[encoder]` sizes must agree with an encoder taken from elsewhere (`what`).
    let check_dims = |dims: &EncoderDims, layers: bool, what: &str| -> Result<()> {
        for (field, ours, theirs) in [
            ("layers", e.layers.filter(|_| layers), dims.layers),
            ("hidden", e.hidden, dims.hidden),
            ("heads", e.heads, dims.heads),
            ("intermediate", e.intermediate, dims.intermediate),
            ("max_positions", e.max_positions, dims.max_positions),
            ("vocab_size", e.vocab_size, dims.vocab_size),
            ("type_vocab_size", e.type_vocab_size, dims.type_vocab_size),
        ] {
            if ours.is_some_and(|v| v != theirs) {
                return Err(in_file(format!(
                    "[encoder] {field} = {} conflicts with {what} ({theirs}); remove it (it is \
                     for fresh encoders)",
                    ours.unwrap()
                )));
            }
        }
        Ok(())
    };
    let pretrained = match (&source, &e.pretrained) {
        (Some(source), _) => {
            let what = format!("the model in {}", source.dir.display());
            check_dims(&source.model.spec.encoder, true, &what)?;
            let dims = &source.model.spec.encoder;
            notes.push(format!(
                "encoder: {} layer(s) of {} from {}{}",
                dims.layers,
                dims.hidden,
                source.dir.display(),
                if e.pretrained.is_some() {
                    " ([encoder] pretrained is not used)"
                } else {
                    ""
                }
            ));
            Some(super::hf::Pretrained {
                dims: dims.clone(),
                params: super::transfer::encoder_params(source.model),
                ignored: Vec::new(),
                tokenizer: None,
            })
        }
        (None, Some(p)) => {
            let dir = resolve_path(config_path, p, "[encoder] pretrained directory")
                .map_err(|e| in_file(e.to_string()))?;
            let loaded = load_pretrained(&dir, e.layers)?;
            inputs.extend(["config.json", "model.safetensors"].map(|f| dir.join(f)));
            check_dims(&loaded.dims, false, "the pretrained model")?;
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
        (None, None) => None,
    };
    let (tokenizer_json, tokenizer_path) = match &source {
        Some(source) => {
            let path = source.dir.join(super::dir::TOKENIZER_FILE);
            if let Some(t) = &e.tokenizer {
                let named = resolve_path(config_path, t, "[encoder] tokenizer")
                    .map_err(|e| in_file(e.to_string()))?;
                let bytes = std::fs::read(&named)
                    .with_context(|| format!("cannot read the tokenizer {}", named.display()))?;
                if bytes != source.model.tokenizer_json {
                    return Err(in_file(format!(
                        "[encoder] tokenizer {} is not the tokenizer of the model in {} (its \
                         encoder was trained with that one); remove the setting",
                        named.display(),
                        source.dir.display()
                    )));
                }
            }
            (source.model.tokenizer_json.clone(), path)
        }
        None => {
            let path = match (
                &e.tokenizer,
                pretrained.as_ref().and_then(|p| p.tokenizer.clone()),
            ) {
                (Some(t), _) => resolve_path(config_path, t, "[encoder] tokenizer")
                    .map_err(|e| in_file(e.to_string()))?,
                (None, Some(t)) => t,
                (None, None) => {
                    return Err(in_file(
                        "[encoder] tokenizer is required (a tokenizer.json) unless the \
                         pretrained directory has one"
                            .into(),
                    ));
                }
            };
            let bytes = std::fs::read(&path)
                .with_context(|| format!("cannot read the tokenizer {}", path.display()))?;
            (bytes, path)
        }
    };
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
    let mut spec = ModelSpec {
        encoder: dims,
        tasks,
    };
    spec.resolve_decoders();
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
    spec.check_decoders()
        .map_err(|e| anyhow!("{}: {e}", config_path.display()))?;
    init_missing(&spec, &mut params)?;
    notes.extend(warm_start_decoders(&spec, &mut params)?);
    if let Some(source) = &source {
        let reinit = config
            .train
            .as_ref()
            .map(|t| t.reinit.as_slice())
            .unwrap_or_default();
        let name = source.dir.display().to_string();
        notes.extend(super::transfer::carry_tasks(
            &spec,
            &mut params,
            source.model,
            &name,
            reinit,
        )?);
        inputs.extend(ModelDir::files(source.dir));
    }
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

/// Copies the encoder into every decoder with `init = "encoder"` (Rothe et al. 2020, as
/// Hugging Face's EncoderDecoderModel warm-starts BERT2BERT): decoder layer `n`'s
/// self-attention, feed-forward and their LayerNorms from encoder layer `n`; the embedding
/// LayerNorm from the encoder's; positions from the encoder's first `max_length` position
/// embeddings plus its first token-type embedding (which the encoder adds to every input).
/// Cross-attention stays as initialized. Returns a note per decoder.
pub fn warm_start_decoders(spec: &ModelSpec, params: &mut HostParams) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    for task in &spec.tasks {
        let (Some(config), Some(dims)) = (&task.decoder, spec.decoder_dims(task)) else {
            continue;
        };
        if config.init != crate::config::DecoderInit::Encoder {
            continue;
        }
        let prefix = format!("tasks.{}.decoder.", task.name);
        let get = |params: &HostParams, name: &str| {
            params
                .get(name)
                .cloned()
                .ok_or_else(|| anyhow!("warm start of task '{}': no {name}", task.name))
        };
        let names: Vec<String> = params
            .keys()
            .filter(|n| n.starts_with(&prefix))
            .cloned()
            .collect();
        for name in names {
            let rest = &name[prefix.len()..];
            let source = if let Some(layer) = rest.strip_prefix("layer.") {
                let (n, suffix) = layer.split_once('.').unwrap_or((layer, ""));
                if suffix.starts_with("crossattention.") {
                    continue;
                }
                format!("{}.{suffix}", layer_prefix(n.parse()?))
            } else if let Some(norm) = rest.strip_prefix("embeddings.LayerNorm.") {
                format!("embeddings.LayerNorm.{norm}")
            } else if rest == "embeddings.position_embeddings.weight" {
                let d = spec.encoder.hidden;
                let positions = get(params, "embeddings.position_embeddings.weight")?;
                let types = get(params, "embeddings.token_type_embeddings.weight")?;
                let mut data = positions.data[..dims.max_length * d].to_vec();
                for (i, v) in data.iter_mut().enumerate() {
                    *v += types.data[i % d];
                }
                let target = params.get_mut(&name).expect("listed");
                target.data = data;
                continue;
            } else {
                continue;
            };
            let value = get(params, &source)?;
            let target = params.get_mut(&name).expect("listed");
            if target.shape != value.shape {
                bail!(
                    "warm start of task '{}': {name} {:?} cannot take {source} {:?}",
                    task.name,
                    target.shape,
                    value.shape
                );
            }
            target.data = value.data;
        }
        notes.push(format!(
            "task '{}': decoder of {} layer(s) warm-started from the encoder (cross-attention fresh)",
            task.name, dims.layers
        ));
    }
    Ok(notes)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `init = "encoder"` copies encoder layer n's self-attention, feed-forward and
    /// LayerNorms into decoder layer n, the embedding LayerNorm, and positions plus the first
    /// token type; cross-attention keeps its fresh values.
    #[test]
    fn decoders_warm_start_from_the_encoder() {
        let dir = tempfile::tempdir().unwrap();
        let tokenizer = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/parity/tokenizer.json"
        );
        let config_path = dir.path().join("model.toml");
        let text = format!(
            "[encoder]\nlayers = 2\nhidden = 8\nheads = 2\nintermediate = 16\nmax_positions = 12\n\
             tokenizer = \"{tokenizer}\"\n\n[[task]]\nname = \"g\"\nkind = \"generation\"\n\
             decoder = {{ layers = 2, max_length = 5 }}\n"
        );
        std::fs::write(&config_path, text).unwrap();
        let config = ModelConfig::load(&config_path).unwrap();
        let model = init_from_config(&config, &config_path, None).unwrap();
        let p = |name: &str| model.params[name].data.clone();
        for n in 0..2 {
            for part in [
                "attention.self.query.weight",
                "attention.self.value.bias",
                "attention.output.dense.weight",
                "attention.output.LayerNorm.weight",
                "intermediate.dense.weight",
                "output.dense.bias",
                "output.LayerNorm.bias",
            ] {
                assert_eq!(
                    p(&format!("tasks.g.decoder.layer.{n}.{part}")),
                    p(&format!("encoder.layer.{n}.{part}")),
                    "layer {n} {part}"
                );
            }
            assert_ne!(
                p(&format!(
                    "tasks.g.decoder.layer.{n}.crossattention.self.query.weight"
                )),
                p(&format!("encoder.layer.{n}.attention.self.query.weight")),
            );
        }
        assert_eq!(
            p("tasks.g.decoder.embeddings.LayerNorm.weight"),
            p("embeddings.LayerNorm.weight")
        );
        let (positions, types) = (
            p("embeddings.position_embeddings.weight"),
            p("embeddings.token_type_embeddings.weight"),
        );
        let want: Vec<f32> = (0..5 * 8).map(|i| positions[i] + types[i % 8]).collect();
        assert_eq!(
            p("tasks.g.decoder.embeddings.position_embeddings.weight"),
            want
        );
        assert!(model.notes.iter().any(|n| n.contains("warm-started")));
        // The resolved sizes are written into the task (and so into taskgate.toml).
        let decoder = model.spec.tasks[0].decoder.as_ref().unwrap();
        assert_eq!((decoder.heads, decoder.intermediate), (Some(2), Some(16)));
    }
}
