//! `taskgate train`, `eval` and `predict` end to end on a tiny model and small generated data
//! in every supported format: a run that learns, a killed-and-resumed run that ends with the
//! same weights as an uninterrupted one, and bad input that fails with one error line
//! (exit 2), naming the file and line, and leaves no run directory behind.

use std::path::Path;

use crate::common::{assert_same_run, fails_with, ok, p, taskgate, write_data};

#[test]
fn train_eval_and_predict_a_tiny_model() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_data(tmp.path(), 90, 45);
    let run = tmp.path().join("out");
    let stdout = ok(&taskgate(&["train", p(&config), "--out", p(&run)], &[]));
    assert!(stdout.contains("trained 90 steps"), "{stdout}");
    for file in [
        "run.toml",
        "log.jsonl",
        "chart.svg",
        "best/model.safetensors",
        "last/optimizer.safetensors",
        "last/state.json",
    ] {
        assert!(run.join(file).exists(), "{file}");
    }
    // Labels were inferred from the training files and stored.
    let stored = std::fs::read_to_string(run.join("last/taskgate.toml")).unwrap();
    assert!(
        stored.contains(r#"labels = ["neg", "pos"]"#) && stored.contains(r#"labels = ["J", "O"]"#),
        "{stored}"
    );
    let log = std::fs::read_to_string(run.join("log.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.iter().filter(|r| r["kind"] == "eval").count(), 2);
    let chart = std::fs::read_to_string(run.join("chart.svg")).unwrap();
    assert!(
        chart.starts_with("<svg") && chart.contains("sentiment") && chart.contains("dev metrics")
    );

    let eval = ok(&taskgate(&["eval", p(&run), "--json"], &[]));
    let eval: serde_json::Value = serde_json::from_str(eval.trim()).unwrap();
    let m = &eval["metrics"];
    assert_eq!(m["sentiment"]["examples"], 40.0);
    assert!(m["sentiment"]["accuracy"].as_f64().unwrap() >= 0.9, "{m}");
    assert!(m["tags"]["token_accuracy"].as_f64().unwrap() >= 0.9, "{m}");
    assert!(m["score"]["pearson"].as_f64().unwrap() >= 0.9, "{m}");
    for key in ["macro_f1", "mcc"] {
        assert!(m["sentiment"][key].is_number(), "{key}");
    }
    for key in ["spearman", "mse"] {
        assert!(m["score"][key].is_number(), "{key}");
    }
    let missing = taskgate(&["eval", p(&run), "--split", "test"], &[]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("`test` file"));

    let input = tmp.path().join("input.jsonl");
    std::fs::write(
        &input,
        "{\"text\": \"the film was great\", \"id\": 1}\n\n{\"text\": \"the plot was boring.\"}\n",
    )
    .unwrap();
    let output = tmp.path().join("predictions.jsonl");
    ok(&taskgate(
        &[
            "predict",
            p(&run),
            "--input",
            p(&input),
            "--output",
            p(&output),
            "--gates",
            "--logits",
        ],
        &[],
    ));
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&output)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["id"], 1);
    assert_eq!(lines[0]["predictions"]["sentiment"]["label"], "pos");
    assert_eq!(lines[1]["predictions"]["sentiment"]["label"], "neg");
    assert_eq!(
        lines[0]["predictions"]["tags"]["tags"],
        serde_json::json!(["O", "O", "O", "J"])
    );
    // The tags task cuts raw text at punctuation too (word_split = "punctuation"): the full
    // stop is a word of its own, and the words are written beside the tags.
    let tags = &lines[1]["predictions"]["tags"];
    assert_eq!(
        tags["words"],
        serde_json::json!(["the", "plot", "was", "boring", "."])
    );
    assert_eq!(tags["tags"].as_array().unwrap().len(), 5);
    assert_eq!(tags["tags"][3], "J");
    let score = |i: usize| {
        lines[i]["predictions"]["score"]["values"][0]
            .as_f64()
            .unwrap()
    };
    assert!(
        score(0) > score(1),
        "positive text scores higher: {} vs {}",
        score(0),
        score(1)
    );
    let gates = lines[0]["gates"]["sentiment"].as_array().unwrap();
    assert_eq!(gates.len(), 6, "[CLS] the film was great [SEP]");
    assert_eq!(gates[0]["token"], "[CLS]");
    assert!(
        gates
            .iter()
            .all(|g| (0.0..=1.0).contains(&g["gate"].as_f64().unwrap()))
    );
    // Raw logits: one row for sequence tasks, one row per token for token tasks, and the
    // decoded predictions follow from them.
    let logits = &lines[0]["logits"];
    let sentiment: Vec<f64> = logits["sentiment"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(sentiment.len(), 2);
    assert!(sentiment[1] > sentiment[0], "pos wins: {sentiment:?}");
    assert_eq!(logits["score"].as_array().unwrap().len(), 1);
    assert!((logits["score"][0].as_f64().unwrap() - score(0)).abs() < 1e-6);
    let tag_rows = logits["tags"].as_array().unwrap();
    assert_eq!(tag_rows.len(), 6, "one row per token");
    assert!(tag_rows.iter().all(|r| r.as_array().unwrap().len() == 2));

    // export-data: every task's training file as one JSONL, which taskgate reads back.
    let exported = tmp.path().join("all.jsonl");
    ok(&taskgate(
        &[
            "export-data",
            p(&config),
            "--per-task",
            "7",
            "--output",
            p(&exported),
        ],
        &[],
    ));
    let text = std::fs::read_to_string(&exported).unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 21, "7 per task");
    for (i, task) in ["sentiment", "score", "tags"].iter().enumerate() {
        assert!(
            rows[i]["labels"][task].is_string()
                || rows[i]["labels"][task].is_array()
                || rows[i]["labels"][task].is_number(),
            "{}",
            rows[i]
        );
    }
    let dir = taskgate::model::ModelDir::load(&run.join("best")).unwrap();
    let examples =
        taskgate::data::jsonl::parse_examples(&text, "all.jsonl", &dir.spec.tasks, &dir.tokenizer)
            .unwrap();
    assert_eq!(examples.len(), 21);
}

#[test]
fn a_killed_run_resumes_to_the_same_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_data(tmp.path(), 12, 4);
    let whole = tmp.path().join("whole");
    ok(&taskgate(&["train", p(&config), "--out", p(&whole)], &[]));

    let killed = tmp.path().join("killed");
    let out = taskgate(
        &["train", p(&config), "--out", p(&killed)],
        &[("TASKGATE_FAULT", "run:step@6")],
    );
    assert!(!out.status.success(), "the hook aborts the process");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(killed.join("last/state.json")).unwrap())
            .unwrap();
    assert_eq!(state["step"], 4, "the last checkpoint before the kill");
    let again = taskgate(&["train", p(&config), "--out", p(&killed)], &[]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--resume"));

    ok(&taskgate(&["train", "--resume", p(&killed)], &[]));
    for file in ["last/model.safetensors", "last/optimizer.safetensors"] {
        let (a, b) = (
            std::fs::read(whole.join(file)).unwrap(),
            std::fs::read(killed.join(file)).unwrap(),
        );
        assert!(
            a == b,
            "{file} differs between the uninterrupted and the resumed run"
        );
    }
    let steps = |dir: &Path| -> Vec<u64> {
        std::fs::read_to_string(dir.join("log.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|r| r["kind"] == "train")
            .map(|r| r["step"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(
        steps(&whole),
        steps(&killed),
        "the resumed log has each step once"
    );
}

/// Runs `train` on a config whose data or settings were edited, expects exit 2 with one
/// error line containing every `expected` part and no run directory left.
fn fails(tmp: &Path, config: &Path, expected: &[&str]) {
    let run = tmp.join("bad-run");
    let out = taskgate(&["train", p(config), "--out", p(&run)], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("an error line: {err}"));
    for part in expected {
        assert!(line.contains(part), "expected '{part}' in: {line}");
    }
    assert!(!run.exists(), "no partial run directory: {err}");
}

#[test]
fn bad_input_is_one_clear_error_and_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let config = write_data(dir, 4, 0);
    let text = std::fs::read_to_string(&config).unwrap();
    // (data file written first, if any; config edit; parts of the expected error line)
    type Case<'a> = (
        Option<(&'a str, &'a [u8])>,
        (&'a str, &'a str),
        &'a [&'a str],
    );
    let cases: [Case; 10] = [
        (Some(("empty.csv", b"")), ("train.csv", "empty.csv"), &["empty.csv", "no examples"]),
        (
            Some(("cols.csv", b"sentence,label\nhi,pos\n")),
            ("train.csv", "cols.csv"),
            &["cols.csv", "no text column 'text'", "text_column"],
        ),
        (None, ("\"regression\"", "\"ranking\""), &["unknown variant `ranking`"]),
        (None, ("name = \"score\"", "name = \"sentiment\""), &["'sentiment' is used twice"]),
        (
            Some(("tags.jsonl", b"{\"text\": \"the movie\", \"label\": [\"O\", \"J\"]}\n{\"text\": \"the film was\", \"label\": [\"O\", \"J\"]}\n")),
            ("train.conll", "tags.jsonl"),
            &["tags.jsonl:2", "2 tags for 3"],
        ),
        (
            Some(("latin1.csv", b"text,label\ngood,pos\ncaf\xe9,neg\n")),
            ("train.csv", "latin1.csv"),
            &["latin1.csv:3", "invalid UTF-8"],
        ),
        (
            Some(("words.tsv", b"text\tscore\nfine\thigh\n")),
            ("train.tsv", "words.tsv"),
            &["words.tsv:2", "'high' is not a number"],
        ),
        (
            Some(("nan.tsv", b"text\tscore\nfine\t1.0\nbad\tNaN\n")),
            ("train.tsv", "nan.tsv"),
            &["nan.tsv:3", "'NaN' is not a finite number"],
        ),
        (None, ("train.csv", "absent.csv"), &["absent.csv", "not found"]),
        (None, ("steps = 4", "steps = 0"), &["steps must be at least 1"]),
    ];
    for (i, (file, (from, to), expected)) in cases.into_iter().enumerate() {
        if let Some((name, bytes)) = file {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
        assert!(text.contains(from), "{from}");
        let config_name = format!("case{i}.toml");
        let edited = dir.join(&config_name);
        std::fs::write(&edited, text.replacen(from, to, 1)).unwrap();
        let mut parts = expected.to_vec();
        if file.is_none() {
            parts.push(&config_name); // config errors name the config file
        }
        fails(dir, &edited, &parts);
    }

    // A checkpoint whose weights do not fit its configuration (the encoder resized by hand,
    // and the manifests removed, as in checkpoints written before manifests existed): one
    // error line with counts, the full list behind --verbose.
    let run = dir.join("run");
    ok(&taskgate(&["train", p(&config), "--out", p(&run)], &[]));
    for name in ["last", "best"] {
        let toml_path = run.join(name).join("taskgate.toml");
        let stored = std::fs::read_to_string(&toml_path).unwrap();
        std::fs::write(&toml_path, stored.replacen("hidden = 16", "hidden = 32", 1)).unwrap();
        std::fs::remove_file(run.join(name).join("manifest.json")).unwrap();
    }
    for args in [
        vec!["train", "--resume", p(&run)],
        vec!["eval", p(&run.join("last"))],
    ] {
        let line = fails_with(
            &args,
            &[],
            &[
                "model.safetensors",
                "of another shape",
                "--verbose lists all",
            ],
        );
        assert!(line.len() < 600, "a short line: {line}");
    }
    let out = taskgate(&["eval", p(&run.join("last")), "--verbose"], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    let details = err.lines().filter(|l| l.starts_with("  ")).count();
    assert!(details > 10, "--verbose lists every mismatch: {err}");
}

/// `mixing = "all_tasks"`: every logged step has every task's loss, and a run killed mid-way
/// resumes to the same weights (sampler counters and dropout seeds per batch).
#[test]
fn an_all_tasks_run_trains_every_task_each_step_and_resumes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_data(tmp.path(), 8, 4);
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("sampler = \"round_robin\"", "mixing = \"all_tasks\"");
    std::fs::write(&config, text).unwrap();
    let whole = tmp.path().join("whole");
    let out = taskgate(&["train", p(&config), "--out", p(&whole)], &[]);
    ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("every task in every step"), "{stderr}");
    let log = std::fs::read_to_string(whole.join("log.jsonl")).unwrap();
    let train_rows: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["kind"] == "train")
        .collect();
    assert_eq!(train_rows.len(), 4, "log_every 2 over 8 steps");
    for row in &train_rows {
        for task in ["sentiment", "score", "tags"] {
            assert!(row["loss"][task].is_f64(), "{task} in {row}");
        }
    }

    let killed = tmp.path().join("killed");
    kill_at_step_6_then_resume(&config, &killed);
    assert_same_run(&whole, &killed, "an all_tasks run resumed after a kill");
}

/// Trains `config` into `dir`, killed by the fault hook at step 6, then resumes it to the end.
fn kill_at_step_6_then_resume(config: &Path, dir: &Path) {
    let out = taskgate(
        &["train", p(config), "--out", p(dir)],
        &[("TASKGATE_FAULT", "run:step@6")],
    );
    assert!(!out.status.success(), "the hook aborts the process");
    ok(&taskgate(&["train", "--resume", p(dir)], &[]));
}

/// Every weighting method trains a run over all tasks, logs its weights (and, for gradient
/// methods, the tasks' gradient cosines), and a run killed mid-way resumes to the same
/// weights, optimizer moments and weighting state (`uncertainty`, `dwa`, `famo` and
/// `gradnorm` keep state in `state.json`).
#[test]
fn every_weighting_method_trains_and_resumes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_data(tmp.path(), 8, 4);
    let base = std::fs::read_to_string(&config)
        .unwrap()
        .replace("sampler = \"round_robin\"", "mixing = \"all_tasks\"");
    let methods = [
        ("equal", ""),
        ("uncertainty", ""),
        ("dwa", "[train.dwa]\nperiod = 2\n"),
        ("rlw", ""),
        ("famo", ""),
        ("gradnorm", "[train.gradnorm]\nalpha = 1.0\n"),
        ("pcgrad", ""),
        ("cagrad", "[train.cagrad]\nc = 0.5\n"),
        ("mgda", ""),
        ("imtl", ""),
    ];
    for (method, table) in methods {
        let text = base.replace(
            "mixing = \"all_tasks\"",
            &format!("mixing = \"all_tasks\"\nweighting = \"{method}\""),
        ) + "\n"
            + table;
        let config = tmp.path().join(format!("{method}.toml"));
        std::fs::write(&config, text).unwrap();
        let whole = tmp.path().join(format!("{method}-whole"));
        ok(&taskgate(&["train", p(&config), "--out", p(&whole)], &[]));
        let log = std::fs::read_to_string(whole.join("log.jsonl")).unwrap();
        let rows: Vec<serde_json::Value> = log
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|r| r["kind"] == "train")
            .collect();
        let gradient_method = ["gradnorm", "pcgrad", "cagrad", "mgda", "imtl"].contains(&method);
        for row in &rows {
            for task in ["sentiment", "score", "tags"] {
                let w = row["weights"][task].as_f64();
                assert!(
                    w.is_some_and(f64::is_finite),
                    "{method}: {task} weight in {row}"
                );
            }
            let pairs = row["cosines"].as_object().map_or(0, |c| c.len());
            assert_eq!(
                pairs,
                if gradient_method { 3 } else { 0 },
                "{method}: {row}"
            );
        }
        let killed = tmp.path().join(format!("{method}-killed"));
        kill_at_step_6_then_resume(&config, &killed);
        // Weights, moments, state.json (the weighting state with it) and the log.
        assert_same_run(&whole, &killed, method);
        let state = |dir: &std::path::Path| -> serde_json::Value {
            let text = std::fs::read_to_string(dir.join("last/state.json")).unwrap();
            serde_json::from_str::<serde_json::Value>(&text).unwrap()["weighting"].clone()
        };
        let stateful = ["uncertainty", "dwa", "famo", "gradnorm"].contains(&method);
        assert_eq!(
            state(&whole).is_object(),
            stateful,
            "{method}: {}",
            state(&whole)
        );
    }
}

/// Settings a weighting cannot run with are one-line errors naming the field (exit 2),
/// before anything is trained.
#[test]
fn bad_weighting_settings_are_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_data(tmp.path(), 8, 4);
    let base = std::fs::read_to_string(&config)
        .unwrap()
        .replace("sampler = \"round_robin\"", "mixing = \"all_tasks\"");
    let cases: [(&str, &str, &[&str]); 5] = [
        (
            "weighting = \"fancy\"",
            "",
            &["unknown variant `fancy`", "weighting"],
        ),
        (
            "weighting = \"dwa\"",
            "[train.cagrad]\nc = 0.5\n",
            &["[train.cagrad]", "\"dwa\""],
        ),
        (
            "weighting = \"gradnorm\"",
            "[train.gradnorm]\nalpha = -1.0\n",
            &["[train.gradnorm] alpha", ">= 0"],
        ),
        (
            "weighting = \"pcgrad\"",
            "[train.pcgrad]\nx = 1\n",
            &["pcgrad"],
        ),
        (
            "weighting = \"famo\"\nmixing = \"one_task\"",
            "",
            &["mixing"],
        ),
    ];
    for (setting, table, expected) in cases {
        let text = base.replace("mixing = \"all_tasks\"", setting) + "\n" + table;
        // `mixing` twice would be a TOML error of its own: keep one.
        let text = if setting.contains("one_task") {
            text.replacen("mixing = \"all_tasks\"", "", 1)
        } else {
            text
        };
        std::fs::write(&config, &text).unwrap();
        let out = taskgate(
            &["train", p(&config), "--out", p(&tmp.path().join("run"))],
            &[],
        );
        assert_eq!(out.status.code(), Some(2), "{setting}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{setting}: {stderr}");
        for e in expected {
            assert!(stderr.contains(e), "{setting}: {e} not in {stderr}");
        }
        assert!(
            !tmp.path().join("run").exists(),
            "{setting}: nothing is written"
        );
    }
    // One task (--only) with a method that combines several.
    let text = base.replace(
        "mixing = \"all_tasks\"",
        "mixing = \"all_tasks\"\nweighting = \"mgda\"",
    );
    std::fs::write(&config, text).unwrap();
    let out = taskgate(
        &[
            "train",
            p(&config),
            "--only",
            "score",
            "--out",
            p(&tmp.path().join("run")),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("weighting = \"mgda\"") && stderr.contains("1 task"),
        "{stderr}"
    );
}
