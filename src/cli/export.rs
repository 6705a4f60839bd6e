//! `taskgate export RUN_OR_MODEL_DIR --format hf --out DIR`: a trained model as a Hugging
//! Face BERT directory, its tasks beside it (see `model::export_hf`). The directory is
//! written as `.DIR.partial/` beside DIR and renamed when complete, so DIR appears whole or
//! not at all; DIR must be new or empty, so an export never replaces anything.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::files::write_atomic;
use crate::model::export_hf::export_files;

/// `--format` of `taskgate export`.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum ExportFormat {
    /// A Hugging Face BERT directory (transformers' AutoModel and AutoTokenizer).
    Hf,
}

pub fn run(dir: &Path, format: ExportFormat, out: &Path, allow_non_finite: bool) -> Result<()> {
    let ExportFormat::Hf = format;
    let (model_path, model) =
        super::load_run_model(dir, super::eval::model_dir(dir), allow_non_finite)?;
    if out.exists() {
        let empty = out.is_dir()
            && std::fs::read_dir(out)
                .with_context(|| format!("cannot read {}", out.display()))?
                .next()
                .is_none();
        if !empty {
            bail!(
                "--out {} already exists and is not an empty directory; give a new directory",
                out.display()
            );
        }
    }
    let files = export_files(&model, &model.sources)?;
    let partial = partial_dir(out)?;
    std::fs::create_dir(&partial).with_context(|| {
        format!(
            "cannot create {} (another export may be writing it, or one was interrupted: \
             remove it and export again)",
            partial.display()
        )
    })?;
    let written = files
        .iter()
        .try_for_each(|(name, bytes)| write_atomic(&partial.join(name), bytes));
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&partial);
        return Err(e);
    }
    if out.is_dir() {
        // Empty (checked above): the rename replaces it.
        std::fs::remove_dir(out).with_context(|| format!("cannot replace {}", out.display()))?;
    }
    std::fs::rename(&partial, out)
        .with_context(|| format!("cannot move {} to {}", partial.display(), out.display()))?;
    println!(
        "exported {} as a Hugging Face BERT directory {} ({} encoder layers; tasks {} in \
         taskgate_tasks.safetensors; pooler untrained: use last_hidden_state)",
        model_path.display(),
        out.display(),
        model.spec.encoder.layers,
        model
            .spec
            .tasks
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

/// `.NAME.partial` beside `out`.
fn partial_dir(out: &Path) -> Result<PathBuf> {
    crate::files::output::partial_path(out)
}
