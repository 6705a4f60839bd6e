//! An advisory lock on a directory (a run directory), held for as long as the process uses
//! it and released by the operating system when the process ends, however it ends (kill -9
//! included). The lock is on the file `.lock` in the directory; the holder writes its process
//! id there so that a second process can say who holds it. The file itself stays: removing a
//! lock file while others may open it would let two processes hold "the" lock.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The lock file's name inside a locked directory.
pub const LOCK_FILE: &str = ".lock";

/// A held lock; dropping it releases the lock.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    path: PathBuf,
}

impl DirLock {
    /// Locks `dir` (which must exist) or fails at once, naming the process that holds it.
    /// `what` says what the caller is about to do, for that error.
    pub fn acquire(dir: &Path, what: &str) -> Result<Self> {
        let path = dir.join(LOCK_FILE);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open the lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let who = match holder.trim().parse::<u32>() {
                    Ok(pid) => format!("another taskgate process (pid {pid})"),
                    Err(_) => "another taskgate process".to_string(),
                };
                bail!(
                    "{who} is using {} right now, so this one cannot {what}; wait for it to \
                     finish (or stop it), then try again",
                    dir.display()
                );
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
        // Best effort: the pid only makes the second process's message more useful.
        let _ = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()));
        Ok(Self { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path(), "train").unwrap();
        let err = DirLock::acquire(dir.path(), "resume the run").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&format!("pid {}", std::process::id()))
                && text.contains("resume the run"),
            "{text}"
        );
        drop(first);
        DirLock::acquire(dir.path(), "train").expect("released on drop");
    }
}
