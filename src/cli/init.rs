//! `taskgate init CONFIG.toml --out DIR [--init-from DIR]`: writes a model directory.

use std::path::Path;

use anyhow::{Result, anyhow, bail};

use crate::config::{ModelConfig, resolve_path};
use crate::files::refuse_input;
use crate::model::ModelDir;
use crate::model::dir::CONFIG_FILE;
use crate::model::export_hf::TASKS_FILE;
use crate::model::init::{InitSource, init_model, init_with_source};
use crate::model::store::MAX_ARENA_BYTES;
use crate::train::run::init_source;

pub fn run(config: &Path, out: &Path, force: bool, init_from: Option<&Path>) -> Result<()> {
    if out.join(TASKS_FILE).exists() {
        bail!(
            "{} is a Hugging Face export (it has {TASKS_FILE}); write the model to another \
             directory",
            out.display()
        );
    }
    if out.join(CONFIG_FILE).exists() && !force {
        bail!(
            "{} already holds a model; pass --force to overwrite it",
            out.display()
        );
    }
    // The model a run of this config would start from: `--init-from` (or `[train]
    // init_from`) carries a trained encoder and tasks into it.
    let parsed = ModelConfig::load(config)?;
    // (resolved as `train` resolves it: beside the config, else in the working directory)
    let from_config = match parsed.train.as_ref().and_then(|t| t.init_from.as_deref()) {
        Some(p) => Some(
            resolve_path(config, p, "[train] init_from directory")
                .map_err(|e| anyhow!("{}: {e}", config.display()))?,
        ),
        None => None,
    };
    let model = match init_from.map(Path::to_path_buf).or(from_config) {
        None => init_model(config)?,
        Some(dir) => {
            let (dir, source) = init_source(&dir)?;
            let cap = (MAX_ARENA_BYTES / 4) as usize;
            let source = InitSource {
                model: &source,
                dir: &dir,
            };
            init_with_source(&parsed, config, Some(cap), Some(source))?
        }
    };
    let inputs: Vec<&Path> = model.inputs.iter().map(|p| p.as_path()).collect();
    for file in ModelDir::files(out) {
        refuse_input(&file, &inputs, "--out")?;
    }
    ModelDir::save(
        out,
        &model.spec,
        &model.sources,
        &model.params,
        &model.tokenizer_json,
    )?;
    for note in &model.notes {
        println!("{note}");
    }
    println!("wrote {}", out.display());
    Ok(())
}
