//! Checkpoints of a training run: a model directory (`taskgate.toml`, `model.safetensors`,
//! `tokenizer.json`) plus `optimizer.safetensors` (AdamW moments per arena) and `state.json`
//! (step, sampler counters, optimizer group steps, best score). A checkpoint is written into
//! a hidden temporary directory and renamed into place, so a crash leaves either the old
//! checkpoint or the new one, never a mix.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};

use super::trainer::Trainer;
use crate::data::sampler::SamplerState;
use crate::model::ModelDir;
use crate::model::host::{
    FileTensor, OutTensor, read_safetensors, write_atomic, write_safetensors,
};

pub const STATE_FILE: &str = "state.json";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";

/// The best dev score so far.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Best {
    pub step: u64,
    pub score: f64,
}

/// Everything besides weights and moments that a resumed run needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    pub step: u64,
    pub total_steps: u64,
    pub sampler: SamplerState,
    pub group_steps: Vec<u64>,
    pub best: Option<Best>,
    /// Real (non-padding) tokens trained on.
    pub tokens: u64,
    /// Training time so far, seconds.
    pub elapsed_s: f64,
}

/// Writes `trainer`'s model and optimizer and `state` to `run_dir/name`.
pub fn save(
    run_dir: &Path,
    name: &str,
    trainer: &Trainer,
    tokenizer_json: &[u8],
    state: &RunState,
) -> Result<()> {
    let tmp = run_dir.join(format!(".{name}.tmp"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)
            .with_context(|| format!("cannot remove {}", tmp.display()))?;
    }
    let model = &trainer.model;
    let params = model.store.download_params()?;
    ModelDir::save(&tmp, &model.spec, &params, tokenizer_json)?;
    let (m, v) = trainer.optimizer.moments();
    let gpu = model.store.params[0].gpu();
    let all: Vec<&crate::gpu::Tensor> = m.iter().chain(v).collect();
    let values = gpu.read_f32_blocking(&all)?;
    let shapes: Vec<[usize; 1]> = values.iter().map(|v| [v.len()]).collect();
    let mut tensors = Vec::new();
    for (i, (v, shape)) in values.iter().zip(&shapes).enumerate() {
        let (kind, arena) = if i < m.len() {
            ("m", i)
        } else {
            ("v", i - m.len())
        };
        tensors.push((format!("{kind}.{arena}"), OutTensor::F32(shape, v)));
    }
    write_safetensors(&tmp.join(OPTIMIZER_FILE), &tensors)?;
    write_atomic(
        &tmp.join(STATE_FILE),
        serde_json::to_string_pretty(state)?.as_bytes(),
    )?;
    replace_dir(&tmp, &run_dir.join(name))
}

/// Moves `from` to `to`, replacing what was there (the old copy is removed last).
fn replace_dir(from: &Path, to: &Path) -> Result<()> {
    let old: PathBuf = to.with_file_name(format!(
        ".{}.old",
        to.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    if old.exists() {
        std::fs::remove_dir_all(&old)?;
    }
    if to.exists() {
        std::fs::rename(to, &old).with_context(|| format!("cannot move {} aside", to.display()))?;
    }
    std::fs::rename(from, to)
        .with_context(|| format!("cannot move {} to {}", from.display(), to.display()))?;
    if old.exists() {
        std::fs::remove_dir_all(&old)?;
    }
    Ok(())
}

/// A checkpoint read back.
pub struct Loaded {
    pub model: ModelDir,
    pub m: Vec<Vec<f32>>,
    pub v: Vec<Vec<f32>>,
    pub state: RunState,
}

/// Reads the checkpoint in `dir`.
pub fn load(dir: &Path) -> Result<Loaded> {
    let model = ModelDir::load(dir)?;
    let state_path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&state_path).with_context(|| {
        format!(
            "cannot read {} (is {} a checkpoint?)",
            state_path.display(),
            dir.display()
        )
    })?;
    let state: RunState = serde_json::from_str(&text)
        .map_err(|e| anyhow!("{}: not a checkpoint state ({e})", state_path.display()))?;
    let opt_path = dir.join(OPTIMIZER_FILE);
    let tensors = read_safetensors(&opt_path)?;
    let moments = |kind: &str| -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::new();
        while let Some(t) = tensors.get(&format!("{kind}.{}", out.len())) {
            match t {
                FileTensor::Float(h, _) => out.push(h.data.clone()),
                FileTensor::Other(_, dtype) => bail!(
                    "{}: {kind}.{} has dtype {dtype:?}",
                    opt_path.display(),
                    out.len()
                ),
            }
        }
        Ok(out)
    };
    let (m, v) = (moments("m")?, moments("v")?);
    Ok(Loaded { model, m, v, state })
}
