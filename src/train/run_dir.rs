//! A run directory as `taskgate train` holds it: locked for the whole run (one process at a
//! time: a second `train --out` or `--resume` on it gets a clear error), started only when it
//! is new or empty, and on `--resume` tidied after a crash (leftover temporary files removed,
//! an interrupted checkpoint save finished) with the newest complete checkpoint chosen to
//! continue from. A fresh run that fails before its first checkpoint removes what it wrote.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::checkpoint::{self, Found};
use crate::files::DirLock;
use crate::files::lock::LOCK_FILE;

/// The resolved configuration of a run, stored in the run directory.
pub const RUN_CONFIG: &str = "run.toml";
pub const LOG_FILE: &str = "log.jsonl";
pub const CHART_FILE: &str = "chart.svg";
pub const LAST: &str = "last";
pub const BEST: &str = "best";

/// A locked run directory.
pub struct RunDir {
    pub path: PathBuf,
    lock: Option<DirLock>,
    /// A fresh run's cleanup on failure: `Some(true)` removes the directory (this process
    /// created it), `Some(false)` empties it (it was empty); `None` keeps everything.
    cleanup: Option<bool>,
}

/// Where a resumed run continues.
pub enum ResumePoint {
    /// The newest complete checkpoint (`last/` or `best/`).
    Checkpoint(Found),
    /// No checkpoint was written before the interruption: step 0, from `run.toml`.
    Start,
}

/// Files desktops drop into any folder they show.
const DESKTOP_FILES: [&str; 3] = [".DS_Store", "Thumbs.db", "desktop.ini"];

/// The hidden temporary files and directories an interrupted write leaves (`.NAME.tmp`,
/// `.NAME.old`, `.NAME.partial`).
fn is_temporary(name: &str) -> bool {
    name.starts_with('.')
        && (name.ends_with(".tmp") || name.ends_with(".old") || name.ends_with(".partial"))
}

/// True for what a crash may leave behind without harm: the lock file and temporary files;
/// desktop files are ignored too (they are kept).
fn is_leftover(name: &str) -> bool {
    name == LOCK_FILE || DESKTOP_FILES.contains(&name) || is_temporary(name)
}

/// Removes a file, or a directory with its contents.
fn remove_entry(path: &Path) -> std::io::Result<()> {
    if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
}

/// The entries of `dir` that are not leftovers.
fn contents(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if !is_leftover(&name) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Removes the temporary files of interrupted writes.
fn remove_leftovers(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        if path
            .file_name()
            .is_some_and(|n| is_temporary(&n.to_string_lossy()))
        {
            remove_entry(&path)
                .with_context(|| format!("cannot remove the leftover {}", path.display()))?;
        }
    }
    Ok(())
}

impl RunDir {
    /// For a fresh run: creates `dir` (or takes it if it is empty but for leftovers of an
    /// interrupted start), locked; anything else in it is an error saying what to do.
    pub fn create(dir: &Path) -> Result<Self> {
        if dir.exists() && !dir.is_dir() {
            bail!(
                "--out {} is a file; give a directory for the run",
                dir.display()
            );
        }
        let created = !dir.exists();
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let lock = DirLock::acquire(dir, "start a run there")?;
        let found = contents(dir)?;
        if !found.is_empty() {
            let d = dir.display();
            if found.iter().any(|n| n == RUN_CONFIG) {
                let (last, _) = checkpoint::find(dir, LAST);
                let (best, _) = checkpoint::find(dir, BEST);
                match last.or(best) {
                    Some(c) => bail!(
                        "{d} already holds a run (a checkpoint at step {}); continue it with \
                         `taskgate train --resume {d}`, or choose another --out",
                        c.step
                    ),
                    None => bail!(
                        "{d} holds a run that stopped before its first checkpoint; \
                         `taskgate train --resume {d}` starts it again from step 0 with its \
                         {RUN_CONFIG}, or choose another --out"
                    ),
                }
            }
            bail!(
                "{d} is not empty ({}) and holds no taskgate run; choose another --out, or \
                 an empty directory",
                found.join(", ")
            );
        }
        remove_leftovers(dir)?;
        crate::fault::point("run:created");
        Ok(Self {
            path: dir.to_path_buf(),
            lock: Some(lock),
            cleanup: Some(created),
        })
    }

    /// For `--resume`: opens `dir` locked, tidies it after a crash and says where to
    /// continue; also returns warnings (damaged checkpoints passed over) to print.
    pub fn open(dir: &Path) -> Result<(Self, ResumePoint, Vec<String>)> {
        let d = dir.display();
        if !dir.is_dir() {
            bail!("{d} does not exist; start a run with `taskgate train CONFIG.toml --out {d}`");
        }
        let lock = DirLock::acquire(dir, "resume the run")?;
        if !dir.join(RUN_CONFIG).exists() {
            if contents(dir)?.is_empty() {
                bail!(
                    "{d} holds no run: it was interrupted before its configuration was written; \
                     start it again with `taskgate train CONFIG.toml --out {d}`"
                );
            }
            bail!(
                "{d} holds no run to resume (no {RUN_CONFIG}); start one with \
                 `taskgate train CONFIG.toml --out DIR`"
            );
        }
        let (last, mut warnings) = checkpoint::tidy(dir, LAST)?;
        let (best, more) = checkpoint::tidy(dir, BEST)?;
        warnings.extend(more);
        remove_leftovers(dir)?;
        let newest = match (last, best) {
            (Some(l), Some(b)) => Some(if b.step > l.step { b } else { l }),
            (l, b) => l.or(b),
        };
        // Resuming from best/ means the crash came between the saves of best/ and last/ of
        // one evaluation: last/ is made what that evaluation wrote, a copy of best/.
        let newest = match newest {
            Some(found) if found.dir == dir.join(BEST) => {
                checkpoint::copy(dir, &found, LAST)?;
                Some(Found {
                    dir: dir.join(LAST),
                    step: found.step,
                })
            }
            other => other,
        };
        let point = match newest {
            Some(found) => ResumePoint::Checkpoint(found),
            None if warnings.is_empty() => ResumePoint::Start,
            None => bail!(
                "{}; no other complete checkpoint is left in {d}: to start the run again from \
                 step 0, move {d}/{LAST} and {d}/{BEST} away and resume again",
                warnings.join("; ")
            ),
        };
        let run = Self {
            path: dir.to_path_buf(),
            lock: Some(lock),
            cleanup: None,
        };
        Ok((run, point, warnings))
    }

    /// From now on a failure keeps the directory (it holds a checkpoint).
    pub fn keep(&mut self) {
        self.cleanup = None;
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let Some(remove_dir) = self.cleanup.take() else {
            return;
        };
        // What this run wrote, with run.toml last: an interrupted cleanup leaves either a
        // run that `--resume` restarts from step 0, or leftovers a fresh start accepts.
        if let Ok(entries) = std::fs::read_dir(&self.path) {
            let mut paths: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n != LOCK_FILE && n != RUN_CONFIG)
                })
                .collect();
            paths.push(self.path.join(RUN_CONFIG));
            for path in paths {
                let _ = remove_entry(&path);
            }
        }
        // The lock file goes only with the directory this process created (and the lock is
        // released first: an open file cannot be removed on Windows).
        self.lock.take();
        if remove_dir {
            let _ = std::fs::remove_file(self.path.join(LOCK_FILE));
            let _ = std::fs::remove_dir(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_run_needs_an_empty_directory_and_the_lock() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        let mut run = RunDir::create(&dir).unwrap();
        let err = RunDir::create(&dir).err().unwrap().to_string();
        assert!(err.contains("another taskgate process"), "{err}");
        let err = RunDir::open(&dir).err().unwrap().to_string();
        assert!(err.contains("another taskgate process"), "{err}");
        std::fs::write(dir.join(RUN_CONFIG), "").unwrap();
        run.keep();
        drop(run);
        // A run that stopped before its first checkpoint: resume from step 0, and a fresh
        // start says so.
        let err = RunDir::create(&dir).err().unwrap().to_string();
        assert!(err.contains("starts it again from step 0"), "{err}");
        let (_, point, warnings) = RunDir::open(&dir).unwrap();
        assert!(matches!(point, ResumePoint::Start) && warnings.is_empty());
    }

    #[test]
    fn leftovers_do_not_block_a_fresh_start_and_a_failed_start_cleans_up() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        std::fs::create_dir_all(dir.join(".last.tmp")).unwrap();
        std::fs::write(dir.join(".run.toml.tmp"), "half").unwrap();
        std::fs::write(dir.join(LOCK_FILE), "").unwrap();
        let err = RunDir::open(&dir).err().unwrap().to_string();
        assert!(
            err.contains("interrupted before its configuration"),
            "{err}"
        );
        let run = RunDir::create(&dir).unwrap();
        assert!(!dir.join(".last.tmp").exists() && !dir.join(".run.toml.tmp").exists());
        std::fs::write(dir.join(RUN_CONFIG), "").unwrap();
        drop(run); // no checkpoint: the directory is emptied but for the lock (it existed)
        let left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, [LOCK_FILE]);
        std::fs::write(dir.join(".DS_Store"), "desktop").unwrap();
        drop(RunDir::create(&dir).expect("desktop files and the lock do not count"));
        std::fs::write(dir.join("notes.txt"), "mine").unwrap();
        let err = RunDir::create(&dir).err().unwrap().to_string();
        assert!(err.contains("holds no taskgate run"), "{err}");
    }
}
