//! Run directories after crashes and collisions: a kill between the two renames of a
//! checkpoint save, a kill before the first checkpoint, two processes on one run directory,
//! leftovers of interrupted writes, and damaged optimizer or state files. Each case ends in a
//! run that `--resume` completes exactly as an uninterrupted run, or in one clear error.

use std::path::Path;
use std::process::{Command, Stdio};

use taskgate::files::DirLock;

use crate::common::{assert_same_run, fails_with, leftovers, ok, p, taskgate, write_data};

/// A config without dev files: `best/` is written only at the end.
fn config_without_dev(dir: &Path, steps: u64, eval_every: u64) -> std::path::PathBuf {
    let config = write_data(dir, steps, eval_every);
    let text = std::fs::read_to_string(&config).unwrap();
    let edited: String = text
        .lines()
        .filter(|l| !l.starts_with("dev = "))
        .map(|l| format!("{l}\n"))
        .collect();
    let path = dir.join("no-dev.toml");
    std::fs::write(&path, edited).unwrap();
    path
}

#[test]
fn a_kill_between_the_renames_of_a_save_resumes_from_the_complete_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_data(tmp.path(), 12, 4);
    let whole = tmp.path().join("whole");
    ok(&taskgate(&["train", p(&config), "--out", p(&whole)], &[]));

    // Killed at step 8's save of last/: the step-4 copy moved aside, the step-8 copy complete
    // but not yet renamed into place.
    let run = tmp.path().join("run");
    let out = taskgate(
        &["train", p(&config), "--out", p(&run)],
        &[("TASKGATE_FAULT", "checkpoint:last:aside@1")],
    );
    assert!(!out.status.success());
    assert!(!run.join("last").exists(), "no last/ after this kill");
    assert!(run.join(".last.old").is_dir() && run.join(".last.tmp").is_dir());
    let out = taskgate(&["train", "--resume", p(&run)], &[]);
    let stdout = ok(&out);
    assert!(stdout.contains("trained 12 steps"), "{stdout}");
    assert_same_run(&whole, &run, "resumed after a kill between the renames");

    // eval and predict find the complete copy too (read-only) when a run is left that way.
    let again = tmp.path().join("again");
    let out = taskgate(
        &["train", p(&config), "--out", p(&again)],
        &[("TASKGATE_FAULT", "checkpoint:last:aside@1")],
    );
    assert!(!out.status.success());
    std::fs::remove_dir_all(again.join("best")).unwrap();
    let report = ok(&taskgate(&["eval", p(&again)], &[]));
    assert!(report.contains(".last.tmp"), "{report}");
}

#[test]
fn a_kill_before_the_first_checkpoint_resumes_from_step_0() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_data(tmp.path(), 8, 4);
    let whole = tmp.path().join("whole");
    ok(&taskgate(&["train", p(&config), "--out", p(&whole)], &[]));
    let run = tmp.path().join("run");
    let out = taskgate(
        &["train", p(&config), "--out", p(&run)],
        &[("TASKGATE_FAULT", "run:step@2")],
    );
    assert!(!out.status.success());
    assert!(run.join("run.toml").exists() && !run.join("last").exists());
    // A fresh start says exactly what to do; --resume does it.
    fails_with(
        &["train", p(&config), "--out", p(&run)],
        &[],
        &["stopped before its first checkpoint", "--resume", "step 0"],
    );
    let out = taskgate(&["train", "--resume", p(&run)], &[]);
    ok(&out);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("starting its run again from step 0"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_same_run(&whole, &run, "resumed from step 0");

    // Killed before run.toml was written: --resume says to start again, and a fresh start
    // into the same directory works.
    let early = tmp.path().join("early");
    let out = taskgate(
        &["train", p(&config), "--out", p(&early)],
        &[("TASKGATE_FAULT", "run:created@1")],
    );
    assert!(!out.status.success() && early.is_dir());
    fails_with(
        &["train", "--resume", p(&early)],
        &[],
        &["interrupted before its configuration", "--out"],
    );
    ok(&taskgate(&["train", p(&config), "--out", p(&early)], &[]));
    assert_same_run(&whole, &early, "started again after an early kill");
}

#[test]
fn one_process_at_a_time_per_run_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_data(tmp.path(), 8, 4);
    let whole = tmp.path().join("whole");
    ok(&taskgate(&["train", p(&config), "--out", p(&whole)], &[]));

    // Another process holds the run directory: both a new run and a resume are refused,
    // naming it, and nothing in the directory changes.
    let held = tmp.path().join("held");
    std::fs::create_dir(&held).unwrap();
    let lock = DirLock::acquire(&held, "test").unwrap();
    let pid = format!("pid {}", std::process::id());
    fails_with(
        &["train", p(&config), "--out", p(&held)],
        &[],
        &["another taskgate process", &pid, "cannot start a run"],
    );
    drop(lock);
    ok(&taskgate(&["train", p(&config), "--out", p(&held)], &[]));
    let lock = DirLock::acquire(&held, "test").unwrap();
    fails_with(
        &["train", "--resume", p(&held)],
        &[],
        &["another taskgate process", "cannot resume the run"],
    );
    drop(lock);

    // Two real processes started together on a new directory: one trains, the other is
    // refused with one clear error (it lost the lock, or found the first one's run), and the
    // surviving run is exactly a lone run.
    for round in 0..2 {
        let run = tmp.path().join(format!("race{round}"));
        let spawn = || {
            Command::new(env!("CARGO_BIN_EXE_taskgate"))
                .args(["train", p(&config), "--out", p(&run)])
                .env_remove("TASKGATE_BACKEND")
                .env_remove("TASKGATE_ADAPTER")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn(), spawn());
        let outs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
        let succeeded = outs.iter().filter(|o| o.status.success()).count();
        assert_eq!(succeeded, 1, "exactly one of two racing runs trains");
        let loser = outs.iter().find(|o| !o.status.success()).unwrap();
        let err = String::from_utf8_lossy(&loser.stderr);
        assert_eq!(loser.status.code(), Some(2), "{err}");
        assert!(
            err.contains("another taskgate process") || err.contains("already holds a run"),
            "{err}"
        );
        assert_same_run(&whole, &run, "the surviving run of two");

        // Two resumes of one interrupted run: one continues it, the other is refused.
        let killed = tmp.path().join(format!("killed{round}"));
        let out = taskgate(
            &["train", p(&config), "--out", p(&killed)],
            &[("TASKGATE_FAULT", "run:step@6")],
        );
        assert!(!out.status.success());
        let resume = || {
            Command::new(env!("CARGO_BIN_EXE_taskgate"))
                .args(["train", "--resume", p(&killed)])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (resume(), resume());
        let outs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
        for o in &outs {
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(
                o.status.success() || err.contains("another taskgate process"),
                "{err}"
            );
        }
        // Both may succeed one after the other (the second then finds the run finished).
        assert!(outs.iter().any(|o| o.status.success()));
        assert_same_run(&whole, &killed, "a run resumed by two processes at once");
    }
}

#[test]
fn leftovers_are_cleaned_and_damaged_files_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let config = config_without_dev(tmp.path(), 8, 4);
    let whole = tmp.path().join("whole");
    ok(&taskgate(&["train", p(&config), "--out", p(&whole)], &[]));

    // A save cut short (a kill while writing model.safetensors) leaves .last.tmp; the next
    // start removes it.
    let run = tmp.path().join("run");
    let out = taskgate(
        &["train", p(&config), "--out", p(&run)],
        &[("TASKGATE_FAULT", "checkpoint:last:file@8")],
    );
    assert!(!out.status.success());
    assert!(run.join(".last.tmp").is_dir(), "{:?}", leftovers(&run));
    ok(&taskgate(&["train", "--resume", p(&run)], &[]));
    assert_same_run(&whole, &run, "resumed after a cut-short save");

    // A damaged last/ (a flipped byte): passed over with a warning for the complete best/.
    let weights = run.join("last/model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x40;
    std::fs::write(&weights, bytes).unwrap();
    let out = taskgate(&["train", "--resume", p(&run)], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warning:") && err.contains("model.safetensors does not match its checksum"),
        "{err}"
    );
    // Both damaged: one error naming the damage and what to do.
    for name in ["last", "best"] {
        std::fs::write(run.join(name).join("state.json"), "{\"step\": ").unwrap();
    }
    fails_with(
        &["train", "--resume", p(&run)],
        &[],
        &["state.json", "no other complete checkpoint", "move"],
    );

    // Checkpoints written before manifests existed are still read; a wrong optimizer file or
    // state there is an error naming the file and the fix.
    let legacy = tmp.path().join("legacy");
    ok(&taskgate(&["train", p(&config), "--out", p(&legacy)], &[]));
    std::fs::remove_dir_all(legacy.join("best")).unwrap();
    std::fs::remove_file(legacy.join("last/manifest.json")).unwrap();
    let optimizer = legacy.join("last/optimizer.safetensors");
    let good = std::fs::read(&optimizer).unwrap();
    ok(&taskgate(&["train", "--resume", p(&legacy)], &[]));
    let empty = safetensors::serialize(
        Vec::<(String, safetensors::tensor::TensorView<'_>)>::new(),
        None,
    )
    .unwrap();
    std::fs::write(&optimizer, empty).unwrap();
    fails_with(
        &["train", "--resume", p(&legacy)],
        &[],
        &["optimizer.safetensors", "m.0, v.0", "damaged"],
    );
    // Moments of the wrong size.
    let data = vec![0u8; 4 * 8];
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![8], &data).unwrap();
    let wrong = safetensors::serialize(vec![("m.0", view.clone()), ("v.0", view)], None).unwrap();
    std::fs::write(&optimizer, wrong).unwrap();
    fails_with(
        &["train", "--resume", p(&legacy)],
        &[],
        &["optimizer.safetensors", "8 values", "start a new run"],
    );
    std::fs::write(&optimizer, &good).unwrap();
    std::fs::write(legacy.join("last/state.json"), "{\"step\": 3}").unwrap();
    fails_with(
        &["train", "--resume", p(&legacy)],
        &[],
        &["state.json", "not a checkpoint state"],
    );
}

/// A small tmpfs mounted on a new directory, unmounted when dropped.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    /// `None` where this process may not mount (not root, or no mount namespace rights).
    fn mount(dir: &Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tmpfs",
                p(dir),
            ])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| SmallDisk(dir.to_path_buf()))
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}"), p(&self.0)])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_is_one_clear_error_and_the_run_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_data(tmp.path(), 12, 4);
    let whole = tmp.path().join("whole");
    ok(&taskgate(&["train", p(&config), "--out", p(&whole)], &[]));
    // Room for the first evaluation's checkpoints (about 75 KB each) and chart, not for the
    // second's.
    let Some(disk) = SmallDisk::mount(&tmp.path().join("disk"), "300k") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root); CI runs this as root");
        return;
    };
    let run = disk.0.join("run");
    let line = fails_with(
        &["train", p(&config), "--out", p(&run)],
        &[],
        &["No space left on device"],
    );
    assert!(line.contains(p(&run)), "the error names the file: {line}");
    // The step-4 checkpoints are intact; the half-written one is gone again.
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("last/state.json")).unwrap())
            .unwrap();
    assert_eq!(state["step"], 4, "{line}");
    assert!(leftovers(&run).is_empty(), "{:?}", leftovers(&run));
    // With space again, --resume ends exactly as an uninterrupted run.
    disk.resize("8m");
    ok(&taskgate(&["train", "--resume", p(&run)], &[]));
    assert_same_run(&whole, &run, "resumed after a full disk");
}
