//! Checkpoints of a training run: a model directory (`taskgate.toml`, `model.safetensors`,
//! `tokenizer.json`) plus `optimizer.safetensors` (AdamW moments per arena), `state.json`
//! (step, sampler counters, optimizer group steps, best score) and, written last,
//! `manifest.json` (the size and CRC-32 of every other file): a checkpoint is complete only
//! when its manifest says so and every file matches it.
//!
//! Saving writes `.NAME.tmp/` (each file synced to disk), then moves the old `NAME/` aside to
//! `.NAME.old/`, renames the new one into place and removes the old one. A crash at any moment
//! leaves at least one complete checkpoint among `NAME/`, `.NAME.tmp/` and `.NAME.old/`;
//! [`tidy`] (run when a run directory is opened) puts the newest complete one back in place
//! and removes the rest. Every step calls [`crate::fault::point`], so the tests can crash
//! there.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};

use super::trainer::Trainer;
use super::weighting::WeightingState;
use crate::config::DataSource;
use crate::data::sampler::SamplerState;
use crate::fault;
use crate::model::ModelDir;
use crate::model::host::{FileTensor, OutTensor, parse_safetensors, serialize_safetensors};

pub const STATE_FILE: &str = "state.json";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub const MANIFEST_FILE: &str = "manifest.json";

/// The best dev score so far.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Best {
    pub step: u64,
    /// NaN when no task has dev data (JSON has no NaN: it is written as `null`).
    #[serde(deserialize_with = "nan_from_null")]
    pub score: f64,
}

fn nan_from_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
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
    /// The weighting method's learned or remembered state (`uncertainty`, `dwa`, `famo`,
    /// `gradnorm`), exact: JSON numbers round-trip f64 bit for bit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weighting: Option<WeightingState>,
}

/// What `manifest.json` records of each other file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct FileEntry {
    bytes: u64,
    crc32: u32,
}

/// `manifest.json`: written last; its presence and agreement make a checkpoint complete.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Manifest {
    taskgate_checkpoint: u32,
    step: u64,
    files: BTreeMap<String, FileEntry>,
}

/// Writes `trainer`'s model and optimizer and `state` to `run_dir/name`, atomically (see the
/// module documentation).
pub fn save(
    run_dir: &Path,
    name: &str,
    trainer: &Trainer,
    tokenizer_json: &[u8],
    sources: &[DataSource],
    state: &RunState,
) -> Result<()> {
    fault::point(&format!("checkpoint:{name}:start"));
    let files = checkpoint_files(trainer, tokenizer_json, sources, state)?;
    install(run_dir, name, &files, state.step)
}

/// Writes `files` as the checkpoint `run_dir/name` of `step`: into `.NAME.tmp/` with its
/// manifest, then renamed into place.
fn install(
    run_dir: &Path,
    name: &str,
    files: &[(impl AsRef<str>, Vec<u8>)],
    step: u64,
) -> Result<()> {
    let tmp = temp_dir(run_dir, name);
    remove_dir_if_present(&tmp)?;
    let written = write_complete(&tmp, files, step, name);
    if written.is_err() {
        // Free the space a full disk needs back; the previous checkpoint is untouched.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    written?;
    replace_dir(&tmp, &run_dir.join(name))
}

/// Removes the directory `dir` with its contents, if it exists.
fn remove_dir_if_present(dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    Ok(())
}

/// The files of a checkpoint, by name, as bytes.
fn checkpoint_files(
    trainer: &Trainer,
    tokenizer_json: &[u8],
    sources: &[DataSource],
    state: &RunState,
) -> Result<Vec<(&'static str, Vec<u8>)>> {
    let model = &trainer.model;
    let params = model.store.download_params()?;
    // The update of a checkpoint step is not covered by the loss check (its loss was computed
    // before it): weights it made NaN or Inf must not replace a good checkpoint.
    crate::model::host::check_finite(
        &params,
        &format!("training diverged at step {}", state.step),
        "the previous checkpoint is kept; lower [train] lr or raise clip, then resume",
    )?;
    let mut files = ModelDir::serialize(&model.spec, sources, &params, tokenizer_json)?;
    let (m, v) = trainer.optimizer.moments();
    let gpu = model.params().gpu();
    let all: Vec<&crate::gpu::Tensor> = m.iter().chain(v).collect();
    let mut values = gpu.read_f32_blocking(&all)?;
    // Each buffer holds at least one element; the moments are its first `moment_lens`.
    let lens = trainer.optimizer.moment_lens();
    for (i, v) in values.iter_mut().enumerate() {
        v.truncate(lens[i % lens.len()]);
    }
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
    files.push((OPTIMIZER_FILE, serialize_safetensors(&tensors)?));
    files.push((
        STATE_FILE,
        serde_json::to_string_pretty(state)?.into_bytes(),
    ));
    Ok(files)
}

/// Writes `files` into the new directory `dir`, each synced, then the manifest.
fn write_complete(
    dir: &Path,
    files: &[(impl AsRef<str>, Vec<u8>)],
    step: u64,
    name: &str,
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut manifest = Manifest {
        taskgate_checkpoint: 1,
        step,
        files: BTreeMap::new(),
    };
    for (file, bytes) in files {
        let file = file.as_ref();
        write_synced(&dir.join(file), bytes)?;
        manifest.files.insert(
            file.to_string(),
            FileEntry {
                bytes: bytes.len() as u64,
                crc32: crc32fast::hash(bytes),
            },
        );
        fault::point(&format!("checkpoint:{name}:file"));
    }
    write_synced(
        &dir.join(MANIFEST_FILE),
        serde_json::to_string_pretty(&manifest)?.as_bytes(),
    )?;
    sync_dir(dir);
    fault::point(&format!("checkpoint:{name}:manifest"));
    Ok(())
}

/// Makes `run_dir/name` a copy of the complete checkpoint `from` (the same atomic steps as
/// [`save`]): a run resumed from `best/` because it is newer than `last/` (a crash between
/// the two saves of one evaluation) gets the `last/` the uninterrupted run wrote.
pub fn copy(run_dir: &Path, from: &Found, name: &str) -> Result<()> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&from.dir)
        .with_context(|| format!("cannot read {}", from.dir.display()))?
    {
        let file = entry?.file_name().to_string_lossy().into_owned();
        if file != MANIFEST_FILE {
            let path = from.dir.join(&file);
            let bytes =
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            files.push((file, bytes));
        }
    }
    install(run_dir, name, &files, from.step)
}

/// Writes `bytes` to `path` and waits until they are on disk.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    std::fs::File::create(path)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        })
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Makes a directory's entries (new names, renames) durable, where the platform allows.
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

fn temp_dir(run_dir: &Path, name: &str) -> PathBuf {
    run_dir.join(format!(".{name}.tmp"))
}

fn old_dir(run_dir: &Path, name: &str) -> PathBuf {
    run_dir.join(format!(".{name}.old"))
}

/// Moves `from` to `to`, replacing what was there (moved aside first, removed last).
fn replace_dir(from: &Path, to: &Path) -> Result<()> {
    let parent = to.parent().unwrap_or(Path::new("."));
    let name = to
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let old = old_dir(parent, &name);
    if old.exists() {
        remove_dir_if_present(&old)?;
        fault::point(&format!("checkpoint:{name}:old-cleared"));
    }
    if to.exists() {
        std::fs::rename(to, &old).with_context(|| format!("cannot move {} aside", to.display()))?;
        fault::point(&format!("checkpoint:{name}:aside"));
    }
    std::fs::rename(from, to)
        .with_context(|| format!("cannot move {} to {}", from.display(), to.display()))?;
    sync_dir(parent);
    fault::point(&format!("checkpoint:{name}:in-place"));
    if old.exists() {
        remove_dir_if_present(&old)?;
        fault::point(&format!("checkpoint:{name}:done"));
    }
    Ok(())
}

/// What a checkpoint directory holds.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    /// Every file agrees with the manifest; the checkpoint's step.
    Complete(u64),
    /// No manifest (written before taskgate kept one) but a readable state: trusted in place
    /// (`NAME/`) and moved aside (`.NAME.old/`), where older versions only ever had complete
    /// checkpoints.
    Unverified(u64),
    /// Not usable, and why.
    Incomplete(String),
}

/// Checks the checkpoint in `dir` against its manifest.
pub fn inspect(dir: &Path) -> Status {
    let manifest_path = dir.join(MANIFEST_FILE);
    let text = match std::fs::read_to_string(&manifest_path) {
        Ok(t) => t,
        Err(_) => {
            return match read_state(dir) {
                Ok(state) if dir.join(OPTIMIZER_FILE).exists() => Status::Unverified(state.step),
                Err(e) if dir.join(STATE_FILE).exists() => {
                    Status::Incomplete(format!("no {MANIFEST_FILE}, and {e:#}"))
                }
                _ => Status::Incomplete(format!(
                    "no {MANIFEST_FILE}: the checkpoint was not finished"
                )),
            };
        }
    };
    let manifest: Manifest = match serde_json::from_str(&text) {
        Ok(m) => m,
        Err(e) => return Status::Incomplete(format!("{MANIFEST_FILE} is damaged ({e})")),
    };
    for (name, entry) in &manifest.files {
        let path = dir.join(name);
        match file_crc(&path) {
            Err(e) => return Status::Incomplete(format!("cannot read {name} ({e})")),
            Ok((bytes, _)) if bytes != entry.bytes => {
                return Status::Incomplete(format!(
                    "{name} has {bytes} bytes where the manifest says {}",
                    entry.bytes
                ));
            }
            Ok((_, crc)) if crc != entry.crc32 => {
                return Status::Incomplete(format!(
                    "{name} does not match its checksum in the manifest"
                ));
            }
            Ok(_) => {}
        }
    }
    Status::Complete(manifest.step)
}

/// The size and CRC-32 of a file, read in pieces.
fn file_crc(path: &Path) -> std::io::Result<(u64, u32)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((total, hasher.finalize()))
}

/// A complete checkpoint found in a run directory.
#[derive(Clone, Debug, PartialEq)]
pub struct Found {
    pub dir: PathBuf,
    pub step: u64,
}

/// The newest complete checkpoint called `name` in `run_dir` among `NAME/`, `.NAME.tmp/`
/// and `.NAME.old/`, without changing anything (for readers such as `eval`); the reasons the
/// others were passed over.
pub fn find(run_dir: &Path, name: &str) -> (Option<Found>, Vec<String>) {
    let mut best: Option<Found> = None;
    let mut skipped = Vec::new();
    let candidates = [
        run_dir.join(name),
        temp_dir(run_dir, name),
        old_dir(run_dir, name),
    ];
    for (i, dir) in candidates.iter().enumerate() {
        if !dir.is_dir() {
            continue;
        }
        let step = match inspect(dir) {
            Status::Complete(step) => step,
            // Without a manifest (an older taskgate): NAME/ and .NAME.old/ were complete
            // copies (only complete ones were renamed); .NAME.tmp/ may have been cut short,
            // and is a leftover like any other (the run goes on from NAME/ or .NAME.old/,
            // or from step 0, which replays exactly).
            Status::Unverified(step) if i != 1 => step,
            Status::Unverified(_) => continue,
            Status::Incomplete(why) => {
                if i == 0 {
                    skipped.push(format!("{} is damaged: {why}", dir.display()));
                }
                continue;
            }
        };
        if best.as_ref().is_none_or(|b| step > b.step) {
            best = Some(Found {
                dir: dir.clone(),
                step,
            });
        }
    }
    (best, skipped)
}

/// The model directory of a run directory (its best checkpoint, else its last; a copy left
/// by an interrupted save when that is the complete one), or `dir` itself.
pub fn model_dir_of(dir: &Path) -> PathBuf {
    for name in [super::run_dir::BEST, super::run_dir::LAST] {
        let (found, warnings) = find(dir, name);
        for warning in warnings {
            eprintln!("warning: {warning}; using another checkpoint");
        }
        if let Some(found) = found {
            return found.dir;
        }
    }
    dir.to_path_buf()
}

/// Puts the newest complete checkpoint called `name` in place as `run_dir/name` (finishing a
/// save that a crash interrupted) and removes the other copies; the caller must hold the run
/// directory's lock. Returns the checkpoint in place, and warnings about damaged ones.
pub fn tidy(run_dir: &Path, name: &str) -> Result<(Option<Found>, Vec<String>)> {
    let (found, warnings) = find(run_dir, name);
    let target = run_dir.join(name);
    let Some(found) = found else {
        remove_dir_if_present(&temp_dir(run_dir, name))?;
        remove_dir_if_present(&old_dir(run_dir, name))?;
        return Ok((None, warnings));
    };
    if found.dir != target {
        remove_dir_if_present(&target)?;
        std::fs::rename(&found.dir, &target).with_context(|| {
            format!(
                "cannot move {} to {}",
                found.dir.display(),
                target.display()
            )
        })?;
        sync_dir(run_dir);
    }
    remove_dir_if_present(&temp_dir(run_dir, name))?;
    remove_dir_if_present(&old_dir(run_dir, name))?;
    Ok((
        Some(Found {
            dir: target,
            step: found.step,
        }),
        warnings,
    ))
}

/// A checkpoint read back.
pub struct Loaded {
    /// Where it was read from.
    pub dir: PathBuf,
    pub model: ModelDir,
    pub m: Vec<Vec<f32>>,
    pub v: Vec<Vec<f32>>,
    pub state: RunState,
}

fn read_state(dir: &Path) -> Result<RunState> {
    let state_path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&state_path).with_context(|| {
        format!(
            "cannot read {} (is {} a checkpoint?)",
            state_path.display(),
            dir.display()
        )
    })?;
    serde_json::from_str(&text).map_err(|e| {
        anyhow!(
            "{}: not a checkpoint state ({e}); the checkpoint is damaged: resume from another \
             copy of the run or start a new run",
            state_path.display()
        )
    })
}

/// Reads the checkpoint in `dir`, found complete by [`find`] or [`tidy`] (which checked its
/// manifest; it is not read twice).
pub fn load(dir: &Path) -> Result<Loaded> {
    let model = ModelDir::load(dir)?;
    let state = read_state(dir)?;
    let opt_path = dir.join(OPTIMIZER_FILE);
    let bytes =
        std::fs::read(&opt_path).with_context(|| format!("cannot read {}", opt_path.display()))?;
    let tensors = parse_safetensors(&bytes, &opt_path.display().to_string())?;
    let moments = |kind: &str| -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::new();
        while let Some(t) = tensors.get(&format!("{kind}.{}", out.len())) {
            match t {
                FileTensor::Float(h, _) => out.push(h.data.clone()),
                FileTensor::Other(_, dtype) => bail!(
                    "{}: {kind}.{} has dtype {dtype:?}, not F32",
                    opt_path.display(),
                    out.len()
                ),
            }
        }
        Ok(out)
    };
    let (m, v) = (moments("m")?, moments("v")?);
    if m.iter().chain(&v).flatten().any(|x| !x.is_finite()) {
        bail!(
            "{}: the AdamW moments hold NaN or Inf values; the checkpoint is damaged: resume \
             from another copy of the run, or start a new run",
            opt_path.display()
        );
    }
    if m.is_empty() || m.len() != v.len() || tensors.len() != m.len() + v.len() {
        let names: Vec<&String> = tensors.keys().collect();
        bail!(
            "{}: expected the moments m.0, v.0, m.1, v.1, ... of AdamW, found {names:?}; the \
             file is damaged or not a taskgate optimizer state",
            opt_path.display()
        );
    }
    Ok(Loaded {
        dir: dir.to_path_buf(),
        model,
        m,
        v,
        state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_checkpoint(dir: &Path, step: u64) {
        let files: Vec<(&str, Vec<u8>)> = vec![
            ("a.bin", vec![1, 2, 3]),
            (STATE_FILE, format!("{{\"step\": {step}}}").into_bytes()),
        ];
        write_complete(dir, &files, step, "test").unwrap();
    }

    #[test]
    fn a_checkpoint_is_complete_only_when_its_manifest_agrees() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("last");
        write_checkpoint(&dir, 7);
        assert_eq!(inspect(&dir), Status::Complete(7));
        std::fs::write(dir.join("a.bin"), [1, 2]).unwrap();
        assert!(matches!(inspect(&dir), Status::Incomplete(w) if w.contains("has 2 bytes")));
        std::fs::write(dir.join("a.bin"), [1, 2, 4]).unwrap();
        assert!(matches!(inspect(&dir), Status::Incomplete(w) if w.contains("checksum")));
        std::fs::remove_file(dir.join(MANIFEST_FILE)).unwrap();
        assert!(matches!(inspect(&dir), Status::Incomplete(w) if w.contains("no manifest.json")));
    }

    #[test]
    fn tidy_puts_the_newest_complete_copy_in_place() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path();
        // A crash between the two renames: the old copy aside, the new one not yet in place.
        write_checkpoint(&old_dir(run, "last"), 4);
        write_checkpoint(&temp_dir(run, "last"), 8);
        let (found, warnings) = find(run, "last");
        assert_eq!(found.unwrap().step, 8);
        assert!(warnings.is_empty());
        let (found, _) = tidy(run, "last").unwrap();
        assert_eq!(
            found,
            Some(Found {
                dir: run.join("last"),
                step: 8
            })
        );
        assert!(!old_dir(run, "last").exists() && !temp_dir(run, "last").exists());
        // A crash while writing the next one: the half-written copy is removed.
        std::fs::create_dir(temp_dir(run, "last")).unwrap();
        std::fs::write(temp_dir(run, "last").join("a.bin"), [9]).unwrap();
        let (found, _) = tidy(run, "last").unwrap();
        assert_eq!(found.unwrap().step, 8);
        assert!(!temp_dir(run, "last").exists());
        // Nothing complete: nothing in place, leftovers gone.
        let empty = tmp.path().join("empty");
        std::fs::create_dir_all(temp_dir(&empty, "best")).unwrap();
        assert_eq!(tidy(&empty, "best").unwrap().0, None);
        assert!(!temp_dir(&empty, "best").exists());
    }
}
