//! Inputs that used to abort, mislead or stop evaluation: sizes too large to allocate (an
//! error naming the setting, never an abort), NaN or Inf in loaded weights (refused, naming
//! the tensor, unless `--allow-non-finite`), and dev or test labels that training never saw
//! (evaluated as errors, with a warning naming each label and its count).

use std::path::Path;

use crate::common::{fails_with, ok, p, taskgate, write_data};

/// `config` with `from` replaced by `to`, written as `name` beside it.
fn edited(config: &Path, name: &str, from: &str, to: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(config).unwrap();
    assert!(text.contains(from), "{from}");
    let path = config.with_file_name(name);
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    path
}

#[test]
fn sizes_too_large_are_errors_naming_the_setting() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_data(tmp.path(), 4, 0);
    let cases = [
        (
            "head.toml",
            "name = \"sentiment\"\n",
            "name = \"sentiment\"\nhead = { hidden = [100000000] }\n",
            "task 'sentiment' head",
        ),
        (
            "positions.toml",
            "max_positions = 32",
            "max_positions = 1000000000",
            "[encoder] max_positions",
        ),
        (
            "layers.toml",
            "layers = 1\n",
            "layers = 10000000\n",
            "layers",
        ),
        (
            "hidden.toml",
            "hidden = 16",
            "hidden = 4611686018427387904",
            "[encoder] vocab_size and hidden",
        ),
    ];
    for (name, from, to, setting) in cases {
        let config = edited(&config, name, from, to);
        let run = tmp.path().join("run");
        for args in [
            vec!["train", p(&config), "--out", p(&run)],
            vec!["init", p(&config), "--out", p(&run)],
        ] {
            let line = fails_with(&args, &[], &[setting, "make that smaller"]);
            assert!(!line.contains("memory allocation"), "{line}");
            assert!(!run.exists(), "nothing written: {line}");
        }
    }
}

/// Sets one value of `tensor` in `dir`'s model.safetensors to `value`.
fn poison(dir: &Path, tensor: &str, value: f32) {
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = file
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.shape().to_vec(), v.data().to_vec()))
        .collect();
    let (_, _, data) = tensors.iter_mut().find(|(n, _, _)| n == tensor).unwrap();
    data[4..8].copy_from_slice(&value.to_le_bytes());
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(n, shape, data)| {
            let view =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                    .unwrap();
            (n.clone(), view)
        })
        .collect();
    std::fs::write(&path, safetensors::serialize(views, None).unwrap()).unwrap();
}

#[test]
fn non_finite_weights_are_refused_unless_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_data(tmp.path(), 4, 0);
    let model = tmp.path().join("model");
    ok(&taskgate(&["init", p(&config), "--out", p(&model)], &[]));
    let input = tmp.path().join("texts.jsonl");
    std::fs::write(&input, "{\"text\": \"the film was great\"}\n").unwrap();
    let tensor = "encoder.layer.0.attention.self.query.weight";
    for value in [f32::NAN, f32::INFINITY] {
        poison(&model, tensor, value);
        let predict = ["predict", p(&model), "--input", p(&input)];
        fails_with(&predict, &[], &[tensor, "NaN or Inf", "--allow-non-finite"]);
        fails_with(&["eval", p(&model)], &[], &[tensor, "NaN or Inf"]);
        let mut allowed = predict.to_vec();
        allowed.push("--allow-non-finite");
        let out = taskgate(&allowed, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert!(
            err.contains("warning:") && err.contains(tensor),
            "the user is told: {err}"
        );
    }
}

#[test]
fn labels_training_never_saw_are_evaluated_as_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let config = write_data(dir, 30, 15);
    // Test files with labels the training files do not have: a tag (twice) and a class.
    let conll = std::fs::read_to_string(dir.join("dev.conll")).unwrap();
    let unseen_tags = conll.replacen("was O\n", "was FW\n", 2);
    std::fs::write(dir.join("test.conll"), &unseen_tags).unwrap();
    let csv = std::fs::read_to_string(dir.join("dev.csv")).unwrap();
    std::fs::write(
        dir.join("test.csv"),
        format!("{csv}the plot was meh,mixed\n"),
    )
    .unwrap();
    // The dev file of the sentiment task has the unseen class too: training evaluates it.
    std::fs::write(
        dir.join("dev-unseen.csv"),
        format!("{csv}the plot was meh,mixed\n"),
    )
    .unwrap();
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replacen(
            "dev = \"dev.csv\"",
            "dev = \"dev-unseen.csv\"\ntest = \"test.csv\"",
            1,
        )
        .replacen(
            "dev = \"dev.conll\"",
            "dev = \"dev.conll\"\ntest = \"test.conll\"",
            1,
        );
    let config = dir.join("unseen.toml");
    std::fs::write(&config, text).unwrap();

    let run = dir.join("run");
    let out = taskgate(&["train", p(&config), "--out", p(&run)], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "training evaluates its dev files: {err}"
    );
    assert!(
        err.contains("warning:")
            && err.contains("dev-unseen.csv")
            && err.contains("'mixed' (1 time)"),
        "{err}"
    );
    let log = std::fs::read_to_string(run.join("log.jsonl")).unwrap();
    assert!(log.contains("\"eval\""), "{log}");

    let out = taskgate(&["eval", p(&run), "--split", "test", "--json"], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("task 'tags'") && err.contains("'FW' (2 times)"),
        "the warning names the label and its count: {err}"
    );
    assert!(err.contains("'mixed' (1 time)"), "{err}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let m = &report["metrics"];
    assert_eq!(
        m["sentiment"]["examples"], 41.0,
        "every test example is counted"
    );
    let tags = m["tags"]["token_accuracy"].as_f64().unwrap();
    assert!(
        tags < 1.0 && tags > 0.5,
        "the unseen tags count as errors: {m}"
    );
    let sentiment = m["sentiment"]["accuracy"].as_f64().unwrap();
    assert!(
        sentiment <= 40.0 / 41.0,
        "the unseen class counts as an error: {m}"
    );
}

/// `class_weights = "balanced"` is resolved from the training file into the run's config and
/// checkpoints (and changes the loss); bad weights are one-line errors naming the field.
#[test]
fn balanced_class_weights_are_resolved_and_trained_with() {
    let dir = tempfile::tempdir().unwrap();
    // (round robin: step 3 is the first of the tags task)
    let config = write_data(dir.path(), 3, 3);
    let marker = "word_split = \"punctuation\"";
    let weighted = edited(
        &config,
        "weighted.toml",
        marker,
        &format!("{marker}\nclass_weights = \"balanced\""),
    );
    let plain_run = dir.path().join("plain");
    let weighted_run = dir.path().join("weighted");
    ok(&taskgate(
        &["train", p(&config), "--out", p(&plain_run)],
        &[],
    ));
    ok(&taskgate(
        &["train", p(&weighted), "--out", p(&weighted_run)],
        &[],
    ));
    // train.conll: 80 words tagged O and 40 tagged J; labels inferred as [J, O]:
    // n / (k n_c) = 120 / (2 * 40) and 120 / (2 * 80).
    for file in ["run.toml", "last/taskgate.toml"] {
        let text = std::fs::read_to_string(weighted_run.join(file)).unwrap();
        let parsed: toml::Table = toml::from_str(&text).unwrap();
        let tags = parsed["task"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"].as_str() == Some("tags"))
            .unwrap();
        let weights: Vec<f64> = tags["class_weights"]
            .as_array()
            .unwrap_or_else(|| panic!("{file}: {text}"))
            .iter()
            .map(|w| w.as_float().unwrap())
            .collect();
        assert_eq!(weights, [1.5, 0.75], "{file}");
    }
    let first_tags_loss = |run: &Path| -> f64 {
        let log = std::fs::read_to_string(run.join("log.jsonl")).unwrap();
        log.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find_map(|r| r["loss"]["tags"].as_f64())
            .unwrap()
    };
    let (plain, weighted) = (first_tags_loss(&plain_run), first_tags_loss(&weighted_run));
    assert!(
        (plain - weighted).abs() > 1e-4,
        "the weights reach the loss: {plain} vs {weighted}"
    );
    // The resolved model evaluates like any other.
    ok(&taskgate(&["eval", p(&weighted_run.join("best"))], &[]));

    for (i, (from, to, parts)) in [
        (
            "label_column = \"score\"",
            "label_column = \"score\"\nclass_weights = [1.0]",
            &[
                "task 'score'",
                "`class_weights` is not a setting of a regression task",
            ][..],
        ),
        (
            marker,
            "word_split = \"punctuation\"\nclass_weights = [1.0, 2.0, 3.0]",
            &["bad1.toml", "task 'tags'", "3 weights for 2 labels (J, O)"],
        ),
        (
            marker,
            "word_split = \"punctuation\"\nclass_weights = \"equal\"",
            &["class_weights", "\"balanced\", a list of weights"],
        ),
        (
            marker,
            "word_split = \"punctuation\"\npos_weight = 2.0",
            &["`pos_weight` is not a setting of a token_classification task"],
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let bad = edited(&config, &format!("bad{i}.toml"), from, to);
        fails_with(
            &["train", p(&bad), "--out", p(&dir.path().join("never"))],
            &[],
            parts,
        );
    }
}
