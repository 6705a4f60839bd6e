//! `taskgate tune`: a study on the tiny three-task config, killed mid-trial and resumed (it
//! must end exactly as an uninterrupted study), the median rule as recorded, and bad
//! `[tune]` input.

use std::path::Path;

use serde_json::Value;

use crate::common::{assert_same_run, fails_with, ok, p, taskgate, write_data};

const TUNE: &str = r#"
[tune]
objective = "mean_dev"
method = "tpe"
trials = 5
startup = 2
seed = 4
early_stop = "median"
early_stop_trials = 1

[tune.space]
"task.sentiment.lambda" = { low = 0.25, high = 4.0, log = true }
"train.lr" = { low = 1e-3, high = 1e-2, log = true }
"task.tags.lambda" = { values = [0.5, 1.0, 2.0] }
"#;

/// The tiny config (6 steps, evaluated at 3 and 6) with `tune` appended.
fn study_config(dir: &Path, tune: &str) -> std::path::PathBuf {
    let config = write_data(dir, 6, 3);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}{tune}")).unwrap();
    config
}

fn records(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("study.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("time_s");
            v
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[test]
fn a_study_killed_mid_trial_resumes_to_the_uninterrupted_result() {
    let dir = tempfile::tempdir().unwrap();
    let config = study_config(dir.path(), TUNE);
    let whole = dir.path().join("whole");
    let run = taskgate(&["tune", p(&config), "--out", p(&whole)], &[]);
    let out = ok(&run);
    assert!(out.contains("| trial |"), "the table is printed: {out}");
    let log = String::from_utf8_lossy(&run.stderr);
    assert!(log.contains("trial 004: "), "each trial is reported: {log}");
    let expected = records(&whole);
    assert_eq!(expected.len(), 5);

    // Killed (as kill -9 does) at the 8th training step of the study: inside trial 001.
    let broken = dir.path().join("broken");
    let killed = taskgate(
        &["tune", p(&config), "--out", p(&broken)],
        &[("TASKGATE_FAULT", "run:step@8")],
    );
    assert!(!killed.status.success());
    assert!(broken.join("trials/001").exists(), "trial 001 was running");
    ok(&taskgate(&["tune", "--resume", p(&broken)], &[]));
    assert_eq!(
        records(&broken),
        expected,
        "study.jsonl after a kill and --resume"
    );
    for trial in ["000", "001", "002", "003", "004"] {
        assert_same_run(
            &whole.join("trials").join(trial),
            &broken.join("trials").join(trial),
            &format!("trial {trial}"),
        );
    }
    for file in ["study.md", "best.toml", "study.svg", "study.toml"] {
        assert!(broken.join(file).is_file(), "{file}");
    }

    // Every trial's settings are in its space; the best trial's settings are in best.toml.
    let best = expected
        .iter()
        .filter(|r| r["objective"].is_number())
        .max_by(|a, b| {
            a["objective"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["objective"].as_f64().unwrap())
        })
        .unwrap();
    let best_toml = std::fs::read_to_string(whole.join("best.toml")).unwrap();
    let lr = best["params"]["train.lr"].as_f64().unwrap();
    assert!((1e-3..=1e-2).contains(&lr), "{lr}");
    let parsed: toml::Table = toml::from_str(&best_toml).unwrap();
    assert_eq!(parsed["train"]["lr"].as_float().unwrap() as f32, lr as f32);
    for r in &expected {
        let tags = r["params"]["task.tags.lambda"].as_f64().unwrap();
        assert!([0.5, 1.0, 2.0].contains(&tags), "{r}");
    }

    // The median rule as recorded: a trial stopped at step 3 exactly when its objective
    // there was below the median of the earlier finished trials' objectives at step 3.
    let mut finished_at_3: Vec<f64> = Vec::new();
    for r in &expected {
        let evals = r["evals"].as_array().unwrap();
        let at_3 = evals[0][1].as_f64().unwrap();
        assert_eq!(evals[0][0], 3);
        let should_stop = !finished_at_3.is_empty() && at_3 < median(finished_at_3.clone());
        let status = r["status"].as_str().unwrap();
        assert_eq!(status == "stopped", should_stop, "{r}");
        if status == "stopped" {
            assert_eq!(r["steps"], 3, "{r}");
            assert_eq!(r["objective"].as_f64().unwrap(), at_3);
        } else {
            assert_eq!(r["steps"], 6, "{r}");
            finished_at_3.push(at_3);
        }
    }
}

#[test]
fn grid_and_random_studies_cover_their_spaces() {
    let dir = tempfile::tempdir().unwrap();
    let config = study_config(
        dir.path(),
        "[tune]\nmethod = \"grid\"\n[tune.space]\n\"task.score.lambda\" = { values = [0.5, 2.0] }\n\
         \"train.weighting\" = { values = [\"static\", \"equal\"] }\n",
    );
    let grid = dir.path().join("grid");
    ok(&taskgate(
        &["tune", p(&config), "--out", p(&grid), "--steps", "2"],
        &[],
    ));
    let mut seen: Vec<String> = records(&grid)
        .iter()
        .map(|r| {
            assert_eq!(r["steps"], 2, "--steps sets every trial's steps: {r}");
            format!(
                "{}/{}",
                r["params"]["task.score.lambda"], r["params"]["train.weighting"]
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            "0.5/\"equal\"",
            "0.5/\"static\"",
            "2.0/\"equal\"",
            "2.0/\"static\""
        ],
        "a grid study runs every point once"
    );
    // Two trials at once (grid draws need no history): the same trials, run for run.
    let parallel = dir.path().join("parallel");
    ok(&taskgate(
        &[
            "tune",
            p(&config),
            "--out",
            p(&parallel),
            "--steps",
            "2",
            "--jobs",
            "2",
        ],
        &[],
    ));
    assert_eq!(
        records(&parallel),
        records(&grid),
        "--jobs 2 runs the same trials"
    );
}

#[test]
fn bad_tune_input_is_a_one_line_error_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let base = write_data(dir.path(), 4, 2);
    let text = std::fs::read_to_string(&base).unwrap();
    let out = dir.path().join("study");
    for (i, (space, parts)) in [
        (
            "\"train.lrr\" = { low = 0.1, high = 0.2 }",
            &["\"train.lrr\"", "unknown field `lrr`"][..],
        ),
        (
            "\"task.nope.lambda\" = { values = [1.0] }",
            &["\"task.nope.lambda\"", "no task `nope`"],
        ),
        (
            "\"train.lr\" = { low = 0.1, high = 0.01 }",
            &["\"train.lr\"", "must be below high"],
        ),
        (
            "\"train.lr\" = { low = 0.0, high = 0.01, log = true }",
            &["\"train.lr\"", "needs low > 0"],
        ),
        (
            "\"task.score.lambda\" = { values = [] }",
            &["\"task.score.lambda\"", "`values` is empty"],
        ),
        (
            "\"train.lr\" = { values = [\"fast\", \"slow\"] }",
            &["\"train.lr\"", "invalid type: string \"fast\""],
        ),
        (
            "\"train.weighting\" = { low = 1.0, high = 2.0 }",
            &["\"train.weighting\"", "invalid type"],
        ),
        (
            "\"train.batch_size\" = { low = 2.0, high = 8.0 }",
            &["\"train.batch_size\"", "invalid type: floating point"],
        ),
        (
            "\"train.lr\" = { low = 1e-3, high = 1e-2, step = 2 }",
            &["unknown field `step`"],
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let config = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&config, format!("{text}\n[tune]\n[tune.space]\n{space}\n")).unwrap();
        let mut parts = parts.to_vec();
        let name = format!("bad{i}.toml");
        parts.push(&name);
        fails_with(&["tune", p(&config), "--out", p(&out)], &[], &parts);
        assert!(!out.exists(), "nothing is written for bad input");
    }
    for (tune, parts) in [
        (
            "[tune]\nobjective = \"dev.nope.accuracy\"\n[tune.space]\n\"train.lr\" = { values = [0.01] }",
            &["[tune] objective", "no task `nope`"][..],
        ),
        (
            "[tune]\nobjective = \"dev.sentiment.pearson\"\n[tune.space]\n\"train.lr\" = { values = [0.01] }",
            &["reports no `pearson`", "accuracy"],
        ),
        ("[tune]\n", &["[tune.space] is empty"]),
    ] {
        let config = dir.path().join("objective.toml");
        std::fs::write(&config, format!("{text}\n{tune}\n")).unwrap();
        fails_with(&["tune", p(&config), "--out", p(&out)], &[], parts);
    }
    fails_with(
        &["tune", p(&base), "--out", p(&out)],
        &[],
        &["no [tune] section"],
    );
    fails_with(
        &["tune", "--resume", p(dir.path())],
        &[],
        &["not a study directory"],
    );
}

/// The README's study (demo/tune.toml) is the demo config with a [tune] section: the part
/// above `[tune]` must stay what demo/four-tasks.toml says (its opening comment aside).
#[test]
fn the_demo_study_is_the_demo_config_plus_tune() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let body = |text: &str| -> String {
        text.lines()
            .skip_while(|l| l.starts_with('#'))
            .take_while(|l| *l != "[tune]")
            .collect::<Vec<_>>()
            .join("\n")
            .trim()
            .to_string()
    };
    let demo = std::fs::read_to_string(root.join("demo/four-tasks.toml")).unwrap();
    let tune = std::fs::read_to_string(root.join("demo/tune.toml")).unwrap();
    assert!(tune.contains("\n[tune]\n"));
    assert_eq!(
        body(&tune),
        body(&demo),
        "demo/tune.toml drifted from demo/four-tasks.toml"
    );
}
