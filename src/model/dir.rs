//! Model directories: `taskgate.toml` (encoder dimensions and tasks), `model.safetensors`
//! (every parameter, f32, Hugging Face BERT names for the encoder) and `tokenizer.json`.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};

use super::export_hf::{POOLER_PREFIX, TASKS_FILE};
use super::host::{
    HostParams, NonFinite, check_finite, params_from_tensors, parse_params, parse_safetensors,
    serialize_params,
};
use super::spec::ModelSpec;
use crate::config::{DataSource, ModelConfig, TaskConfig};
use crate::files::write_atomic;
use crate::tokenize::TextTokenizer;

pub const CONFIG_FILE: &str = "taskgate.toml";
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// The weight files of a model directory.
enum Weights<'a> {
    /// `model.safetensors` with every parameter.
    Model(&'a [u8]),
    /// A `taskgate export --format hf` directory: BertModel's weights (pooler included) and
    /// the tasks' file.
    Export { encoder: &'a [u8], tasks: &'a [u8] },
}

/// A model directory read into memory.
pub struct ModelDir {
    pub spec: ModelSpec,
    /// Each task's data files, as the directory's `taskgate.toml` names them (for `eval` and
    /// `train`; the model itself never reads them).
    pub sources: Vec<DataSource>,
    pub params: HostParams,
    pub tokenizer: TextTokenizer,
    /// The raw `tokenizer.json`, to copy into directories derived from this one.
    pub tokenizer_json: Vec<u8>,
}

impl ModelDir {
    /// The files a model directory `dir` consists of (and the tasks' file of an export).
    pub fn files(dir: &Path) -> [std::path::PathBuf; 4] {
        [CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE, TASKS_FILE].map(|name| dir.join(name))
    }

    /// Reads and checks `dir` (every parameter must match the configuration exactly and be
    /// finite).
    pub fn load(dir: &Path) -> Result<Self> {
        Self::load_with(dir, NonFinite::Reject)
    }

    /// [`ModelDir::load`], saying what to do with NaN or Inf weights.
    pub fn load_with(dir: &Path, non_finite: NonFinite) -> Result<Self> {
        let config_path = dir.join(CONFIG_FILE);
        if !config_path.exists() {
            anyhow::bail!(
                "{} is not a taskgate model directory (no {CONFIG_FILE}); create one with \
                 `taskgate init CONFIG.toml --out DIR`",
                dir.display()
            );
        }
        let config_text = std::fs::read_to_string(&config_path)
            .with_context(|| format!("cannot read {}", config_path.display()))?;
        let tokenizer_path = dir.join(TOKENIZER_FILE);
        let tokenizer_json = std::fs::read(&tokenizer_path)
            .with_context(|| format!("cannot read {}", tokenizer_path.display()))?;
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
        };
        let weights = read(WEIGHTS_FILE)?;
        // A `taskgate export --format hf` directory: the tasks beside the BertModel weights.
        let tasks = match dir.join(TASKS_FILE).exists() {
            true => Some(read(TASKS_FILE)?),
            false => None,
        };
        let weights = match &tasks {
            Some(tasks) => Weights::Export {
                encoder: &weights,
                tasks,
            },
            None => Weights::Model(&weights),
        };
        Self::from_weights(&config_text, tokenizer_json, weights, dir, non_finite)
    }

    /// Reads a model directory from the contents of its three files (the browser's path:
    /// fetched or dropped files); errors name the files as if they were in `dir`.
    pub fn from_parts(
        config_text: &str,
        tokenizer_json: Vec<u8>,
        weights: &[u8],
        dir: &Path,
    ) -> Result<Self> {
        Self::from_parts_with(config_text, tokenizer_json, weights, dir, NonFinite::Reject)
    }

    /// [`ModelDir::from_parts`], saying what to do with NaN or Inf weights.
    pub fn from_parts_with(
        config_text: &str,
        tokenizer_json: Vec<u8>,
        weights: &[u8],
        dir: &Path,
        non_finite: NonFinite,
    ) -> Result<Self> {
        Self::from_weights(
            config_text,
            tokenizer_json,
            Weights::Model(weights),
            dir,
            non_finite,
        )
    }

    fn from_weights(
        config_text: &str,
        tokenizer_json: Vec<u8>,
        weights: Weights<'_>,
        dir: &Path,
        non_finite: NonFinite,
    ) -> Result<Self> {
        let config_path = dir.join(CONFIG_FILE);
        let config = ModelConfig::parse(config_text, &config_path)?;
        let spec = ModelSpec::from_config(&config)
            .map_err(|e| anyhow!("{}: {e}", config_path.display()))?;
        let tokenizer = TextTokenizer::from_bytes(&tokenizer_json, spec.encoder.max_length)
            .map_err(|e| anyhow!("{}: {e}", dir.join(TOKENIZER_FILE).display()))?;
        let (params, source) = match weights {
            Weights::Model(bytes) => {
                let source = dir.join(WEIGHTS_FILE).display().to_string();
                (parse_params(bytes, &spec.param_specs(), &source)?, source)
            }
            Weights::Export { encoder, tasks } => {
                let source = format!(
                    "{} with {}",
                    dir.join(WEIGHTS_FILE).display(),
                    dir.join(TASKS_FILE).display()
                );
                let mut tensors =
                    parse_safetensors(encoder, &dir.join(WEIGHTS_FILE).display().to_string())?;
                if let Some(task) = tensors.keys().find(|name| name.starts_with("tasks.")) {
                    bail!(
                        "{} holds task tensors ({task}), and so does {}: one of them is stale; \
                         an export keeps its tasks only in the second, a model directory \
                         only in the first: remove the one that does not belong",
                        dir.join(WEIGHTS_FILE).display(),
                        dir.join(TASKS_FILE).display()
                    );
                }
                tensors.retain(|name, _| !name.starts_with(POOLER_PREFIX));
                tensors.extend(parse_safetensors(
                    tasks,
                    &dir.join(TASKS_FILE).display().to_string(),
                )?);
                let params = params_from_tensors(tensors, &spec.param_specs(), &source)?;
                (params, source)
            }
        };
        if non_finite == NonFinite::Reject {
            check_finite(
                &params,
                &source,
                "the weights are damaged, or training diverged before they were saved: use \
                 another checkpoint (eval and predict take --allow-non-finite to go on anyway)",
            )?;
        }
        Ok(Self {
            spec,
            sources: config.tasks.iter().map(TaskConfig::source).collect(),
            params,
            tokenizer,
            tokenizer_json,
        })
    }

    /// Writes a model directory (creating it), each file atomically.
    pub fn save(
        dir: &Path,
        spec: &ModelSpec,
        sources: &[DataSource],
        params: &HostParams,
        tokenizer_json: &[u8],
    ) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for (name, bytes) in Self::serialize(spec, sources, params, tokenizer_json)? {
            write_atomic(&dir.join(name), &bytes)?;
        }
        Ok(())
    }

    /// The three files of a model directory, by name, as bytes.
    pub fn serialize(
        spec: &ModelSpec,
        sources: &[DataSource],
        params: &HostParams,
        tokenizer_json: &[u8],
    ) -> Result<Vec<(&'static str, Vec<u8>)>> {
        let toml = toml::to_string(&spec.to_config(sources))?;
        let header = "# taskgate model directory: encoder dimensions and tasks.\n\
                      # Weights are in model.safetensors, the tokenizer in tokenizer.json.\n\n";
        Ok(vec![
            (CONFIG_FILE, format!("{header}{toml}").into_bytes()),
            (TOKENIZER_FILE, tokenizer_json.to_vec()),
            (WEIGHTS_FILE, serialize_params(params, &spec.param_specs())?),
        ])
    }
}
