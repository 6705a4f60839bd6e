//! Command outputs that never destroy inputs. An output path that names one of the command's
//! inputs (the same regular file by any path: symbolic and hard links included) is refused
//! before anything is opened. A file output is written to `.NAME.partial` beside it (beside
//! the target of a symbolic link, which stays a link), locked against a second writer, and
//! renamed over NAME only when complete: a failed or interrupted command leaves the previous
//! NAME (or none), never half of one. Special files (`/dev/stdout`, whatever the shell
//! redirected it to, a pipe, a terminal) are written in place, appending.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

/// Fails when `output` is the same file as one of `inputs` (missing inputs are skipped);
/// `flag` names the option that gave `output` in the error.
pub fn refuse_input(output: &Path, inputs: &[&Path], flag: &str) -> Result<()> {
    // Only a regular file can be destroyed by writing it (a terminal or a pipe that is both
    // the input and the output is fine).
    if is_special(output) || !std::fs::metadata(output).is_ok_and(|m| m.is_file()) {
        return Ok(());
    }
    for input in inputs {
        if input.exists() && same_file::is_same_file(output, input).unwrap_or(false) {
            bail!(
                "{flag} {} is the same file as the input {}: writing it would destroy the \
                 input; choose another output path",
                output.display(),
                input.display()
            );
        }
    }
    Ok(())
}

/// Where a command writes its lines: standard output, or a file made complete on
/// [`Output::finish`].
pub enum Output {
    Stdout(BufWriter<std::io::StdoutLock<'static>>),
    File(PartialFile),
    /// A special file (`/dev/stdout`, a named pipe): written in place.
    Special(BufWriter<File>),
}

impl Output {
    /// Standard output when `path` is `None`, else the file `path`, which must not be one of
    /// `inputs` (see [`refuse_input`]).
    pub fn open(path: Option<&Path>, inputs: &[&Path], flag: &str) -> Result<Self> {
        let Some(path) = path else {
            return Ok(Output::Stdout(BufWriter::new(std::io::stdout().lock())));
        };
        refuse_input(path, inputs, flag)?;
        let exists = std::fs::metadata(path).ok();
        if is_special(path) || exists.as_ref().is_some_and(|m| !m.is_file() && !m.is_dir()) {
            let file = std::fs::OpenOptions::new()
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            return Ok(Output::Special(BufWriter::new(file)));
        }
        // A symbolic link stays one: its target is what gets replaced.
        let target = match exists {
            Some(_) => std::fs::canonicalize(path)
                .with_context(|| format!("cannot resolve {}", path.display()))?,
            None => path.to_path_buf(),
        };
        Ok(Output::File(PartialFile::create(&target)?))
    }

    /// Flushes and, for a file, moves it into place.
    pub fn finish(self) -> Result<()> {
        match self {
            Output::Stdout(mut w) => w.flush().context("cannot write to standard output"),
            Output::Special(mut w) => w.flush().context("cannot write the output"),
            Output::File(f) => f.commit(),
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Output::Stdout(w) => w.write(buf),
            Output::Special(w) => w.write(buf),
            Output::File(f) => f.writer.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Output::Stdout(w) => w.flush(),
            Output::Special(w) => w.flush(),
            Output::File(f) => f.writer.flush(),
        }
    }
}

/// Paths that name a process's streams or devices (`/dev/stdout`, `/proc/self/fd/1`): their
/// target may be a regular file the shell opened, which must be written through them.
fn is_special(path: &Path) -> bool {
    path.starts_with("/dev") || path.starts_with("/proc")
}

/// A file being written as `.NAME.partial` beside its final path; removed again when dropped
/// without [`PartialFile::commit`].
pub struct PartialFile {
    path: PathBuf,
    partial: PathBuf,
    writer: BufWriter<File>,
    committed: bool,
}

/// The temporary name of `path` while it is being written.
pub fn partial_path(path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("{} is not a file path", path.display()))?;
    Ok(path.with_file_name(format!(".{}.partial", name.to_string_lossy())))
}

impl PartialFile {
    /// Opens `.NAME.partial` beside `path` (a leftover of an interrupted run is reused),
    /// locked: a second process writing the same output gets a clear error.
    pub fn create(path: &Path) -> Result<Self> {
        let partial = partial_path(path)?;
        let file = Self::open_locked(path, &partial)?;
        file.set_len(0)
            .with_context(|| format!("cannot write {}", partial.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
            partial,
            writer: BufWriter::new(file),
            committed: false,
        })
    }

    /// Opens and locks `partial`. The file locked must still be the one at `partial`: another
    /// writer may have renamed it into place between our open and our lock (it is then its
    /// finished output, which must not be emptied), so that is checked, and retried.
    fn open_locked(path: &Path, partial: &Path) -> Result<File> {
        for _ in 0..3 {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(false)
                .open(partial)
                .with_context(|| format!("cannot create {}", partial.display()))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => bail!(
                    "another process is writing {} right now; wait for it or choose another \
                     output",
                    path.display()
                ),
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(e).with_context(|| format!("cannot lock {}", partial.display()));
                }
            }
            let ours = same_file::Handle::from_file(file.try_clone()?)?;
            if same_file::Handle::from_path(partial).is_ok_and(|at| at == ours) {
                return Ok(file);
            }
        }
        bail!(
            "another process keeps writing {}; wait for it or choose another output",
            path.display()
        )
    }

    /// Flushes, syncs and renames the file into place.
    pub fn commit(mut self) -> Result<()> {
        let what = || format!("cannot write {}", self.partial.display());
        self.writer.flush().with_context(what)?;
        self.writer.get_ref().sync_all().with_context(what)?;
        std::fs::rename(&self.partial, &self.path).with_context(|| {
            format!(
                "cannot move {} to {}",
                self.partial.display(),
                self.path.display()
            )
        })?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_input_is_never_an_output() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.jsonl");
        std::fs::write(&input, "keep me\n").unwrap();
        let other = dir.path().join("other.jsonl");
        // The same file by another spelling, and by a hard link.
        let spelled = dir.path().join(".").join("in.jsonl");
        let linked = dir.path().join("link.jsonl");
        std::fs::hard_link(&input, &linked).unwrap();
        for output in [&input, &spelled, &linked] {
            let err = Output::open(Some(output), &[&other, &input], "--output")
                .err()
                .expect("refused");
            assert!(err.to_string().contains("same file as the input"), "{err}");
        }
        assert_eq!(std::fs::read_to_string(&input).unwrap(), "keep me\n");
        // A new path is fine, and appears only when finished.
        let out = dir.path().join("out.jsonl");
        let mut w = Output::open(Some(&out), &[&input], "--output").unwrap();
        writeln!(w, "line").unwrap();
        assert!(!out.exists(), "nothing in place before finish");
        let err = Output::open(Some(&out), &[], "--output")
            .err()
            .expect("a second writer is refused");
        assert!(err.to_string().contains("another process"), "{err}");
        w.finish().unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "line\n");
        assert!(!partial_path(&out).unwrap().exists());
    }

    #[cfg(unix)]
    #[test]
    fn a_linked_output_stays_a_link_and_devices_are_written_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target.jsonl");
        std::fs::write(&target, "old\n").unwrap();
        let link = dir.path().join("link.jsonl");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let mut w = Output::open(Some(&link), &[], "--output").unwrap();
        writeln!(w, "new").unwrap();
        w.finish().unwrap();
        assert!(link.is_symlink());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new\n");
        // A device is no regular file: never "the same file as the input", written in place.
        let null = Path::new("/dev/null");
        let mut w = Output::open(Some(null), &[null], "--output").unwrap();
        writeln!(w, "gone").unwrap();
        w.finish().unwrap();
    }

    #[test]
    fn an_abandoned_output_leaves_the_previous_file() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.jsonl");
        std::fs::write(&out, "previous\n").unwrap();
        {
            let mut w = Output::open(Some(&out), &[], "--output").unwrap();
            writeln!(w, "half").unwrap();
            // dropped without finish: an error happened
        }
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "previous\n");
        assert!(!partial_path(&out).unwrap().exists());
    }
}
