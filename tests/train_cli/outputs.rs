//! No output ever overwrites an input: `predict --output`, `export-data --output`,
//! `eval --output`, `dump --out` and `init --out` refuse a path that is one of the command's
//! inputs (by any spelling, or a hard link), before anything is written; an output appears
//! only when complete.

use std::path::Path;

use crate::common::{PARITY, fails_with, ok, p, taskgate, write_data};

#[test]
fn outputs_never_replace_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let config = write_data(dir, 4, 0);
    let model = dir.join("model");
    ok(&taskgate(&["init", p(&config), "--out", p(&model)], &[]));
    let input = dir.join("texts.jsonl");
    let texts = "{\"text\": \"the film was great\"}\n{\"text\": \"the plot was boring\"}\n";
    std::fs::write(&input, texts).unwrap();
    let linked = dir.join("linked.jsonl");
    std::fs::hard_link(&input, &linked).unwrap();
    let spelled = dir.join(".").join("texts.jsonl");

    // predict: the input, another spelling of it, a hard link to it, a model file.
    let weights = model.join("model.safetensors");
    let weights_before = std::fs::read(&weights).unwrap();
    for output in [&input, &spelled, &linked, &weights] {
        fails_with(
            &[
                "predict",
                p(&model),
                "--input",
                p(&input),
                "--output",
                p(output),
            ],
            &[],
            &["--output", "same file as the input"],
        );
    }
    assert_eq!(std::fs::read_to_string(&input).unwrap(), texts);
    assert_eq!(std::fs::read(&weights).unwrap(), weights_before);

    // export-data: a data file of the config, or the config itself.
    let train_csv = dir.join("train.csv");
    let csv_before = std::fs::read(&train_csv).unwrap();
    for output in [&train_csv, &config] {
        fails_with(
            &["export-data", p(&config), "--output", p(output)],
            &[],
            &["same file as the input"],
        );
    }
    assert_eq!(std::fs::read(&train_csv).unwrap(), csv_before);

    // eval: the report to a dev file of the model's tasks.
    let dev_csv = dir.join("dev.csv");
    let dev_before = std::fs::read(&dev_csv).unwrap();
    fails_with(
        &["eval", p(&model), "--json", "--output", p(&dev_csv)],
        &[],
        &["same file as the input"],
    );
    assert_eq!(std::fs::read(&dev_csv).unwrap(), dev_before);

    // dump: the batch file.
    let batch = dir.join("batch.jsonl");
    let batch_text = "{\"text\": \"the film was great\", \"labels\": {\"sentiment\": \"pos\"}}\n";
    std::fs::write(&batch, batch_text).unwrap();
    fails_with(
        &[
            "dump",
            "--model",
            p(&model),
            "--batch",
            p(&batch),
            "--out",
            p(&batch),
        ],
        &[],
        &["--out", "same file as the input"],
    );
    assert_eq!(std::fs::read_to_string(&batch).unwrap(), batch_text);

    // init --force into the directory that holds the config's tokenizer.
    let tokenizer_dir = dir.join("tok");
    std::fs::create_dir(&tokenizer_dir).unwrap();
    let tokenizer = tokenizer_dir.join("tokenizer.json");
    std::fs::copy(Path::new(PARITY).join("tokenizer.json"), &tokenizer).unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    let own = dir.join("own-tokenizer.toml");
    std::fs::write(
        &own,
        text.replace(&format!("{PARITY}/tokenizer.json"), p(&tokenizer)),
    )
    .unwrap();
    let tokenizer_before = std::fs::read(&tokenizer).unwrap();
    fails_with(
        &["init", p(&own), "--out", p(&tokenizer_dir), "--force"],
        &[],
        &["tokenizer.json", "same file as the input"],
    );
    assert_eq!(std::fs::read(&tokenizer).unwrap(), tokenizer_before);

    // The same commands to new paths work, and the outputs are complete.
    let output = dir.join("predictions.jsonl");
    ok(&taskgate(
        &[
            "predict",
            p(&model),
            "--input",
            p(&input),
            "--output",
            p(&output),
        ],
        &[],
    ));
    assert_eq!(std::fs::read_to_string(&output).unwrap().lines().count(), 2);
    let report = dir.join("eval.json");
    ok(&taskgate(
        &["eval", p(&model), "--json", "--output", p(&report)],
        &[],
    ));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert!(report["metrics"]["sentiment"]["accuracy"].is_number());
    let leftovers: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
