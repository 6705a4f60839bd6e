//! A generation task end to end through the `taskgate` command: trained together with the
//! three tasks of `write_data` (JSONL targets), evaluated (exact match, BLEU, chrF) and used
//! by `predict` (greedy, and `--beam N` with N scored texts); then bad generation input.
//! (Whether the decoder learns is measured on real data, README: at this size a fresh
//! cross-attention sits long on the plateau of the target's marginal distribution.)

use std::path::Path;

use crate::common::{NEGATIVE, POSITIVE, SUBJECTS, fails_with, ok, p, taskgate, write_data};

/// Adds the `echo` generation task to the config in `dir`: the target is the sentence's
/// adjective (one word of the tokenizer's vocabulary), so it is learnt in a few steps.
fn add_echo_task(config: &Path, decoder: &str) {
    let dir = config.parent().unwrap();
    let mut jsonl = String::new();
    for subject in SUBJECTS {
        for word in POSITIVE.iter().chain(&NEGATIVE) {
            jsonl.push_str(&format!(
                "{{\"text\": \"the {subject} was {word}\", \"target\": \"{word}\"}}\n"
            ));
        }
    }
    for split in ["train", "dev"] {
        std::fs::write(dir.join(format!("{split}.jsonl")), &jsonl).unwrap();
    }
    let text = std::fs::read_to_string(config).unwrap();
    let task = format!(
        "[[task]]\nname = \"echo\"\nkind = \"generation\"\ntrain = \"train.jsonl\"\ndev = \
         \"dev.jsonl\"\ngate = \"vector\"\n{decoder}\n\n[train]"
    );
    std::fs::write(config, text.replacen("[train]", &task, 1)).unwrap();
}

#[test]
fn a_generation_task_trains_evaluates_and_predicts() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_data(tmp.path(), 160, 80);
    add_echo_task(
        &config,
        "decoder = { layers = 1, max_length = 6, init = \"encoder\" }\nlabel_smoothing = 0.05",
    );
    let run = tmp.path().join("out");
    ok(&taskgate(&["train", p(&config), "--out", p(&run)], &[]));
    let stored = std::fs::read_to_string(run.join("last/taskgate.toml")).unwrap();
    assert!(stored.contains("kind = \"generation\""), "{stored}");

    // The decoder learnt the targets' distribution at least: its loss fell from ln(vocab).
    let log = std::fs::read_to_string(run.join("log.jsonl")).unwrap();
    let losses: Vec<f64> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter_map(|r| r["loss"]["echo"].as_f64())
        .collect();
    assert!(losses.len() >= 4, "{log}");
    assert!(
        losses[losses.len() - 1] < 0.7 * losses[0],
        "the echo loss fell: {losses:?}"
    );

    let eval = ok(&taskgate(&["eval", p(&run), "--json"], &[]));
    let eval: serde_json::Value = serde_json::from_str(eval.trim()).unwrap();
    let m = &eval["metrics"]["echo"];
    assert_eq!(m["examples"], 40.0, "{m}");
    let exact = m["exact_match"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&exact), "{m}");
    for key in ["bleu", "chrf"] {
        let v = m[key].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&v), "{key}: {m}");
    }
    assert!(eval["metrics"]["sentiment"]["accuracy"].as_f64().unwrap() >= 0.9);

    let input = tmp.path().join("input.jsonl");
    std::fs::write(
        &input,
        "{\"text\": \"the film was great\"}\n{\"text\": \"the story was boring\"}\n",
    )
    .unwrap();
    let predict = |extra: &[&str]| -> Vec<serde_json::Value> {
        let mut args = vec!["predict", p(&run), "--input", p(&input)];
        args.extend_from_slice(extra);
        ok(&taskgate(&args, &[]))
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let greedy = predict(&[]);
    let vocabulary: Vec<&str> = POSITIVE.iter().chain(&NEGATIVE).copied().collect();
    for line in &greedy {
        let text = line["predictions"]["echo"]["text"].as_str().unwrap();
        assert!(
            text.split_whitespace().all(|w| vocabulary.contains(&w)
                || SUBJECTS.contains(&w)
                || ["the", "was"].contains(&w)),
            "generated words come from the tokenizer: {text:?}"
        );
        assert!(line["predictions"]["echo"]["beams"].is_null());
    }
    let beams = predict(&["--beam", "3"]);
    for line in &beams {
        let beams = line["predictions"]["echo"]["beams"].as_array().unwrap();
        assert_eq!(beams.len(), 3, "{line}");
        let scores: Vec<f64> = beams.iter().map(|b| b["score"].as_f64().unwrap()).collect();
        assert!(
            scores.windows(2).all(|w| w[0] >= w[1]),
            "best first: {scores:?}"
        );
        assert_eq!(line["predictions"]["echo"]["text"], beams[0]["text"]);
    }
}

#[test]
fn bad_generation_input_is_refused_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_data(tmp.path(), 4, 4);
    let out = tmp.path().join("out");
    let args = ["train", p(&config), "--out", p(&out)];
    let base = std::fs::read_to_string(&config).unwrap();
    let with = |decoder: &str| {
        std::fs::write(&config, &base).unwrap();
        add_echo_task(&config, decoder);
    };
    with("decoder = { heads = 3 }");
    fails_with(
        &args,
        &[],
        &[
            "echo",
            "decoder.heads (3) does not divide the hidden width (16)",
        ],
    );
    with("decoder = { layers = 2 }");
    fails_with(
        &args,
        &[],
        &["echo", "decoder.layers = 2", "the encoder has 1", "fresh"],
    );
    with(
        "decoder = { layers = 2, init = \"fresh\", heads = 4, intermediate = 24 }\nlabel_smoothing = 1.5",
    );
    fails_with(&args, &[], &["echo", "label_smoothing must be in [0, 1)"]);
    with("decoder = { layer = 2 }");
    fails_with(&args, &[], &["unknown field `layer`"]);
    // A classification task cannot take a decoder.
    std::fs::write(
        &config,
        base.replacen(
            "kind = \"classification\"",
            "kind = \"classification\"\ndecoder = { layers = 1 }",
            1,
        ),
    )
    .unwrap();
    fails_with(
        &args,
        &[],
        &["sentiment", "`decoder` is for generation tasks only"],
    );
    // A line without its target names the file and line.
    with("decoder = { layers = 1 }");
    std::fs::write(
        tmp.path().join("train.jsonl"),
        "{\"text\": \"the film was great\", \"target\": \"great\"}\n{\"text\": \"the plot\"}\n",
    )
    .unwrap();
    fails_with(&args, &[], &["train.jsonl:2", "missing \"target\""]);
    std::fs::write(
        tmp.path().join("train.jsonl"),
        "{\"text\": \"the film\", \"target\": \"  \"}\n",
    )
    .unwrap();
    fails_with(&args, &[], &["train.jsonl:1", "the target text is empty"]);
    assert!(!out.exists(), "no run directory is left behind");
    // A target longer than max_length is cut, with a warning that counts the cuts.
    std::fs::write(tmp.path().join("train.jsonl"), "{\"text\": \"the film\", \"target\": \"great good fun loved happy bad sad\"}\n{\"text\": \"the plot\", \"target\": \"fun\"}\n").unwrap();
    with("decoder = { layers = 1, max_length = 4 }");
    std::fs::write(tmp.path().join("train.jsonl"), "{\"text\": \"the film\", \"target\": \"great good fun loved happy bad sad\"}\n{\"text\": \"the plot\", \"target\": \"fun\"}\n").unwrap();
    let run = taskgate(&args, &[]);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{err}");
    assert!(
        err.contains("1 target(s) longer than the decoder's max_length (4"),
        "{err}"
    );
}

/// `export-data --batches N` lists what `train` draws: per step the round-robin task, at most
/// `batch_size` distinct examples given by their index in the task's training file (the
/// echo task's labels are the targets of those lines), the same list every time, another
/// with another seed; `--batches 0` is refused.
#[test]
fn export_data_lists_each_steps_batches() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_data(tmp.path(), 8, 0);
    add_echo_task(&config, "decoder = { layers = 1, max_length = 6 }");
    let export = |config: &Path, name: &str| -> Vec<serde_json::Value> {
        let out = tmp.path().join(name);
        ok(&taskgate(
            &[
                "export-data",
                p(config),
                "--batches",
                "8",
                "--output",
                p(&out),
            ],
            &[],
        ));
        std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let steps = export(&config, "batches.jsonl");
    assert_eq!(steps.len(), 8);
    let targets: Vec<String> = std::fs::read_to_string(tmp.path().join("train.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["target"].to_string())
        .collect();
    let order = ["sentiment", "score", "tags", "echo"];
    for (s, step) in steps.iter().enumerate() {
        assert_eq!(step["step"], s + 1);
        let batches = step["batches"].as_array().unwrap();
        assert_eq!(batches.len(), 1, "one task a step: {step}");
        let batch = &batches[0];
        assert_eq!(batch["task"], order[s % 4], "round robin: {step}");
        let examples: Vec<usize> = batch["examples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_u64().unwrap() as usize)
            .collect();
        assert!(!examples.is_empty() && examples.len() <= 8, "{step}");
        let mut distinct = examples.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), examples.len(), "{step}");
        assert_eq!(batch["input_ids"].as_array().unwrap().len(), examples.len());
        if batch["task"] == "echo" {
            for (k, &i) in examples.iter().enumerate() {
                let label = &batch["labels"][k];
                assert_eq!(label["text"].to_string(), targets[i], "{step}");
                assert!(label["tokens"].as_array().unwrap().len() >= 3, "{label}");
            }
        }
    }
    assert_eq!(export(&config, "again.jsonl"), steps, "the same every time");
    let text = std::fs::read_to_string(&config).unwrap();
    let reseeded = tmp.path().join("reseeded.toml");
    std::fs::write(&reseeded, text.replace("seed = 5", "seed = 6")).unwrap();
    assert_ne!(export(&reseeded, "other.jsonl"), steps, "another seed");
    fails_with(
        &["export-data", p(&config), "--batches", "0"],
        &[],
        &["--batches must be at least 1"],
    );
}
