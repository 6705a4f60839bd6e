//! Data-parallel training under `mpirun` (`--features mpi`; `.ci/run` runs these with
//! OpenMPI on lavapipe): 2 ranks train as one process does on the same global batches, the
//! ranks stay bit-identical, a run with dropout is reproducible and resumes exactly after a
//! rank is killed, checkpoints move between 1 and 2 processes, and a failing or hanging rank
//! ends the whole job with one message.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::transfer::tensors;

/// `mpirun` with what OpenMPI needs in a container as root on 2 cores.
fn mpirun() -> Command {
    let mut cmd = Command::new("mpirun");
    cmd.args([
        "--oversubscribe",
        "--mca",
        "btl_vader_single_copy_mechanism",
        "none",
    ])
    .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
    .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    .env_remove("TASKGATE_BACKEND")
    .env_remove("TASKGATE_ADAPTER");
    cmd
}

/// `mpirun -np N taskgate ARGS` (with `env`), to completion.
fn ranks(n: usize, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = mpirun();
    cmd.args(["-np", &n.to_string(), env!("CARGO_BIN_EXE_taskgate")])
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run mpirun")
}

/// The three-task test config with `dropout`, `batch_size` and `steps` replaced.
fn config(dir: &Path, steps: u64, eval_every: u64, dropout: f32, batch: usize) -> PathBuf {
    let config = write_data(dir, steps, eval_every);
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("dropout = 0.1", &format!("dropout = {dropout:?}"))
        .replace("batch_size = 8", &format!("batch_size = {batch}"));
    std::fs::write(&config, text).unwrap();
    config
}

fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// The largest difference of each tensor of two weight files relative to the tensor's
/// largest magnitude, worst first.
fn relative_differences(a: &Path, b: &Path) -> Vec<(f64, String)> {
    let (a, b) = (tensors(a), tensors(b));
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "the same tensors"
    );
    let mut out: Vec<(f64, String)> = a
        .iter()
        .map(|(name, (shape, x))| {
            let (x, y) = (floats(x), floats(&b[name].1));
            assert_eq!(shape, &b[name].0, "{name}");
            let diff = x
                .iter()
                .zip(&y)
                .map(|(p, q)| (p - q).abs() as f64)
                .fold(0.0, f64::max);
            let scale = x.iter().map(|p| p.abs() as f64).fold(0.0, f64::max);
            (diff / scale.max(1e-12), name.clone())
        })
        .collect();
    out.sort_by(|p, q| q.0.total_cmp(&p.0));
    out
}

#[test]
fn two_ranks_train_as_one_process_on_the_same_global_batches() {
    let tmp = tempfile::tempdir().unwrap();
    // Dropout off (the ranks' masks differ from one process's by design); a global batch of
    // 7 splits 4 + 3.
    let config = config(tmp.path(), 20, 10, 0.0, 7);
    let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
    ok(&taskgate(&["train", p(&config), "--out", p(&one)], &[]));
    let out = ranks(
        2,
        &["train", p(&config), "--out", p(&two)],
        &[("TASKGATE_CHECK_REPLICAS", "1")],
    );
    let stdout = ok(&out);
    assert!(
        stdout.contains("identical to rank 0's after each of 20 steps"),
        "{stdout}"
    );
    assert!(stdout.contains("data-parallel on 2 ranks"), "{stdout}");
    let worst = relative_differences(
        &one.join("last/model.safetensors"),
        &two.join("last/model.safetensors"),
    );
    eprintln!(
        "largest relative differences, 2 ranks vs 1 process: {:?}",
        &worst[..3]
    );
    assert!(worst[0].0 <= 1e-5, "{worst:?}");
    // Only rank 0 wrote: one log, with one line per logged step.
    let log: Vec<serde_json::Value> = std::fs::read_to_string(two.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let steps: Vec<u64> = log
        .iter()
        .filter(|v| v["kind"] == "train")
        .map(|v| v["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, (1..=10).map(|s| 2 * s).collect::<Vec<_>>());

    // The dev metrics the ranks computed together at step 20 (each of the two dev batches on
    // its own rank) are exactly those one process computes from the same parameters.
    let logged = log
        .iter()
        .rfind(|v| v["kind"] == "eval" && v["step"] == 20)
        .expect("a dev evaluation at step 20");
    let out = taskgate(
        &["eval", p(&two.join("last")), "--split", "dev", "--json"],
        &[],
    );
    let alone: serde_json::Value = serde_json::from_str(ok(&out).trim()).unwrap();
    for task in ["sentiment", "score", "tags"] {
        assert_eq!(
            alone["metrics"][task]["examples"].as_f64(),
            Some(40.0),
            "{alone}"
        );
        assert_eq!(
            logged["metrics"][task], alone["metrics"][task],
            "{task}: 2 ranks' dev metrics against one process's"
        );
    }
}

/// Polls `dir`'s log until it records step `step` or later.
fn wait_for_step(dir: &Path, step: u64, child: &mut std::process::Child) {
    let started = Instant::now();
    loop {
        let logged = std::fs::read_to_string(dir.join("log.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["step"].as_u64())
            .max()
            .unwrap_or(0);
        if logged >= step {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the run ended ({status}) before step {step}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no step {step}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_killed_rank_ends_the_job_and_the_run_resumes_exactly_on_any_number_of_processes() {
    let tmp = tempfile::tempdir().unwrap();
    let config = config(tmp.path(), 60, 10, 0.1, 8);

    // Reproducible bit for bit with dropout on: the reference is a whole 2-rank run.
    let whole = tmp.path().join("whole");
    ok(&ranks(2, &["train", p(&config), "--out", p(&whole)], &[]));

    // Rank 1 is killed (SIGKILL) after the step-10 checkpoint.
    let killed = tmp.path().join("killed");
    let (out, ended_in) = signal_rank1(&config, &killed, 12, "-9", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(ended_in < Duration::from_secs(30), "{ended_in:?}");
    assert!(
        stderr.contains("signal 9") || stderr.contains("Killed"),
        "a message about the killed rank: {stderr}"
    );
    eprintln!("the job ended {ended_in:?} after rank 1 was killed");

    // The same checkpoint resumed by one process ...
    let copy = tmp.path().join("copy");
    copy_dir(&killed, &copy);
    let stdout = ok(&taskgate(&["train", "--resume", p(&copy)], &[]));
    assert!(stdout.contains("trained 60 steps"), "{stdout}");

    // ... and by 2 ranks: exactly the uninterrupted run.
    ok(&ranks(2, &["train", "--resume", p(&killed)], &[]));
    assert_same_run(&whole, &killed, "2 ranks killed at step 12 and resumed");

    // A one-process run's checkpoint resumed by 2 ranks.
    let single = tmp.path().join("single");
    let out = taskgate(
        &["train", p(&config), "--out", p(&single)],
        &[("TASKGATE_FAULT", "run:step@15")],
    );
    assert!(!out.status.success());
    let stdout = ok(&ranks(2, &["train", "--resume", p(&single)], &[]));
    assert!(stdout.contains("trained 60 steps"), "{stdout}");
}

/// Starts a 2-rank run of `config` into `out` (with `env`) whose rank 1 records its pid,
/// sends rank 1 `signal` once step `step` is logged, and waits for the job to end; returns
/// its output and how long it took to end after the signal.
fn signal_rank1(
    config: &Path,
    out: &Path,
    step: u64,
    signal: &str,
    env: &[(&str, &str)],
) -> (Output, Duration) {
    let bin = env!("CARGO_BIN_EXE_taskgate");
    let pid_file = out.with_extension("rank1.pid");
    let rank1 = format!(
        "echo $$ > {} && exec {bin} train {} --out {}",
        p(&pid_file),
        p(config),
        p(out)
    );
    let mut job = mpirun();
    for (k, v) in env {
        job.env(k, v);
    }
    let mut child = job
        .args(["-np", "1", bin, "train", p(config), "--out", p(out)])
        .args([":", "-np", "1", "sh", "-c", &rank1])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_step(out, step, &mut child);
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let sent_at = Instant::now();
    let sent = Command::new("kill").args([signal, pid.trim()]).status();
    assert!(sent.unwrap().success());
    let output = child.wait_with_output().unwrap();
    (output, sent_at.elapsed())
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn an_error_on_the_ranks_is_printed_once_and_a_hanging_rank_times_out() {
    let tmp = tempfile::tempdir().unwrap();
    let config = config(tmp.path(), 400, 0, 0.1, 8);

    // A setting the ranks cannot run: one error line, the job ended.
    let text = std::fs::read_to_string(&config).unwrap();
    let bad = tmp.path().join("bad.toml");
    std::fs::write(
        &bad,
        text.replace(
            "[train]\n",
            "[train]\nweighting = \"pcgrad\"\nmixing = \"all_tasks\"\n",
        ),
    )
    .unwrap();
    let out = ranks(
        2,
        &["train", p(&bad), "--out", p(&tmp.path().join("bad"))],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("pcgrad") && errors[0].contains("ranks"),
        "{stderr}"
    );

    // Rank 1 stopped (SIGSTOP) mid-run: rank 0 waits in the gradient sum until the time
    // limit, then names it and ends the job.
    let hang = tmp.path().join("hang");
    let timeout = [("TASKGATE_MPI_TIMEOUT", "4")];
    let (out, ended_in) = signal_rank1(&config, &hang, 4, "-STOP", &timeout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(ended_in < Duration::from_secs(30), "{stderr}");
    assert!(
        stderr.contains("rank 0: the gradient sum")
            && stderr.contains("did not complete within 4 s"),
        "{stderr}"
    );
}
