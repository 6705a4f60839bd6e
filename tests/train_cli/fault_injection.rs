//! Fault injection: a training run is killed at every point where a crash can interrupt it
//! (each step, each log line cut in half, each file of each checkpoint save, between the
//! renames of every save, ...; the list comes from the run itself, through
//! `TASKGATE_FAULT_TRACE`), and by `kill -9` at random moments. Every time, `--resume` (or,
//! when the kill came before the run's configuration was written, a fresh start into the same
//! directory) must end with exactly the run an uninterrupted process writes.

#![cfg(unix)]

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::{assert_same_run, ok, p, taskgate, write_data};

/// How an interrupted run is continued: `--resume`, or a fresh start when the kill came
/// before anything resumable was written. Panics on anything else.
fn finish(config: &Path, run: &Path, what: &str) {
    let out = taskgate(&["train", "--resume", p(run)], &[]);
    if out.status.success() {
        return;
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("interrupted before its configuration was written"),
        "{what}: --resume failed: {err}"
    );
    let out = taskgate(&["train", p(config), "--out", p(run)], &[]);
    assert!(
        out.status.success(),
        "{what}: a fresh start failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One case of the test.
type Job<'a> = Box<dyn FnOnce() + Send + 'a>;

/// Runs `jobs` on two threads (the machines this runs on have two cores).
fn in_parallel(jobs: Vec<Job<'_>>) {
    let next = AtomicUsize::new(0);
    let jobs: Vec<Mutex<Option<Job<'_>>>> = jobs.into_iter().map(|j| Mutex::new(Some(j))).collect();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(job) = jobs.get(i) else { break };
                    let job = job.lock().unwrap().take().unwrap();
                    job();
                }
            });
        }
    });
}

#[test]
fn a_run_killed_anywhere_resumes_to_the_same_run() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let config = write_data(tmp.path(), 6, 3);
    let whole = tmp.path().join("whole");
    let trace = tmp.path().join("trace.txt");
    ok(&taskgate(
        &["train", p(&config), "--out", p(&whole)],
        &[("TASKGATE_FAULT_TRACE", p(&trace))],
    ));
    let points: Vec<String> = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    for kind in [
        "run:created",
        "run:configured",
        "run:step",
        "log:half-line",
        "checkpoint:best:file",
        "checkpoint:last:file",
        "checkpoint:last:manifest",
        "checkpoint:last:aside",
        "checkpoint:last:in-place",
        "checkpoint:last:done",
        "run:chart",
    ] {
        assert!(
            points.iter().any(|pt| pt.starts_with(kind)),
            "the run passes {kind}: {points:?}"
        );
    }

    // A kill at each point.
    let jobs: Vec<Job<'_>> = points
        .iter()
        .enumerate()
        .map(|(i, point)| {
            let (config, whole) = (&config, &whole);
            let run = tmp.path().join(format!("fault{i}"));
            Box::new(move || {
                let out = taskgate(
                    &["train", p(config), "--out", p(&run)],
                    &[("TASKGATE_FAULT", point.as_str())],
                );
                assert_eq!(
                    out.status.signal(),
                    Some(6),
                    "{point}: the run is aborted there: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                finish(config, &run, point);
                assert_same_run(whole, &run, point);
            }) as Job<'_>
        })
        .collect();
    in_parallel(jobs);

    // kill -9 at moments spread over the run (seeded, so a failure repeats).
    let full = {
        let t = Instant::now();
        ok(&taskgate(
            &["train", p(&config), "--out", p(&tmp.path().join("timed"))],
            &[],
        ));
        t.elapsed()
    };
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let delays: Vec<Duration> = (0..8)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            full.mul_f64((seed % 1000) as f64 / 1000.0)
        })
        .collect();
    let jobs: Vec<Job<'_>> = delays
        .into_iter()
        .enumerate()
        .map(|(i, delay)| {
            let (config, whole) = (&config, &whole);
            let run: PathBuf = tmp.path().join(format!("kill{i}"));
            Box::new(move || {
                let what = format!("kill -9 after {delay:?}");
                let mut child = Command::new(env!("CARGO_BIN_EXE_taskgate"))
                    .args(["train", p(config), "--out", p(&run)])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap();
                std::thread::sleep(delay);
                let _ = child.kill();
                let _ = child.wait();
                if run.exists() {
                    finish(config, &run, &what);
                } else {
                    ok(&taskgate(&["train", p(config), "--out", p(&run)], &[]));
                }
                assert_same_run(whole, &run, &what);
            }) as Job<'_>
        })
        .collect();
    in_parallel(jobs);
    eprintln!(
        "{} kills at fault points and 8 at random moments, all resumed exactly, in {:.1} s",
        points.len(),
        started.elapsed().as_secs_f64()
    );
}
