//! `taskgate init CONFIG.toml --out DIR`: writes a model directory.

use std::path::Path;

use anyhow::{Result, bail};

use crate::files::refuse_input;
use crate::model::ModelDir;
use crate::model::dir::CONFIG_FILE;
use crate::model::init::init_model;

pub fn run(config: &Path, out: &Path, force: bool) -> Result<()> {
    if out.join(CONFIG_FILE).exists() && !force {
        bail!(
            "{} already holds a model; pass --force to overwrite it",
            out.display()
        );
    }
    let model = init_model(config)?;
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
