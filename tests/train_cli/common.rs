//! Helpers shared by the `taskgate` command tests: running the binary, and a tiny
//! three-task configuration with generated data in three formats.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const PARITY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/parity");

pub fn taskgate(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_taskgate"));
    cmd.args(args)
        .env_remove("TASKGATE_BACKEND")
        .env_remove("TASKGATE_ADAPTER");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run taskgate")
}

pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

pub const POSITIVE: [&str; 5] = ["great", "good", "fun", "loved", "happy"];
pub const NEGATIVE: [&str; 5] = ["bad", "terrible", "boring", "hated", "sad"];
pub const SUBJECTS: [&str; 4] = ["movie", "film", "plot", "story"];

/// Writes the data of three tasks: sentiment (CSV), score (TSV regression), tags (CoNLL:
/// adjectives tagged J, the rest O) and returns the config path.
pub fn write_data(dir: &Path, steps: u64, eval_every: u64) -> PathBuf {
    let mut csv = String::from("text,label\n");
    let mut tsv = String::from("text\tscore\n");
    let mut conll = String::new();
    let mut n = 0;
    for (i, subject) in SUBJECTS.iter().enumerate() {
        for j in 0..5 {
            let (pos, neg) = (POSITIVE[(i + j) % 5], NEGATIVE[(i * 2 + j) % 5]);
            csv.push_str(&format!(
                "the {subject} was {pos},pos\nthe {subject} was {neg},neg\n"
            ));
            tsv.push_str(&format!(
                "it was very {pos}\t1.5\nit was very {neg}\t-1.5\n"
            ));
            conll.push_str(&format!(
                "the O\n{subject} O\nwas O\n{pos} J\n\n{neg} J\n{subject} O\n\n"
            ));
            n += 1;
        }
    }
    assert_eq!(n, 20);
    for split in ["train", "dev"] {
        std::fs::write(dir.join(format!("{split}.csv")), &csv).unwrap();
        std::fs::write(dir.join(format!("{split}.tsv")), &tsv).unwrap();
        std::fs::write(dir.join(format!("{split}.conll")), &conll).unwrap();
    }
    let config = dir.join("run.toml");
    let encoder = tiny_encoder(1);
    std::fs::write(
        &config,
        format!(
            r#"
{encoder}

[[task]]
name = "sentiment"
kind = "classification"
train = "train.csv"
dev = "dev.csv"

[[task]]
name = "score"
kind = "regression"
train = "train.tsv"
dev = "dev.tsv"
label_column = "score"
gate = "vector"
pooling = "mean"

[[task]]
name = "tags"
kind = "token_classification"
train = "train.conll"
dev = "dev.conll"
word_split = "punctuation"

[train]
steps = {steps}
batch_size = 8
lr = 3e-3
warmup = 0.1
eval_every = {eval_every}
log_every = 2
sampler = "round_robin"
seed = 5
"#
        ),
    )
    .unwrap();
    config
}

/// The `[encoder]` section of the tiny test models: `layers` layers of 16, the parity
/// fixture's tokenizer, dropout 0.1, seed 3.
pub fn tiny_encoder(layers: usize) -> String {
    format!(
        "[encoder]\nlayers = {layers}\nhidden = 16\nheads = 2\nintermediate = 32\n\
         max_positions = 32\ntokenizer = \"{PARITY}/tokenizer.json\"\ndropout = 0.1\nseed = 3\n"
    )
}

/// Runs taskgate with `args`, expects exit status 2 and one `error:` line containing every
/// one of `parts`; returns that line.
pub fn fails_with(args: &[&str], env: &[(&str, &str)], parts: &[&str]) -> String {
    let out = taskgate(args, env);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "one error line: {err}");
    for part in parts {
        assert!(
            lines[0].contains(part),
            "expected '{part}' in: {}",
            lines[0]
        );
    }
    lines[0].to_string()
}

/// The names in `dir` that an interrupted write leaves behind (`.NAME.tmp`, `.NAME.old`,
/// `.NAME.partial`), recursively.
pub fn leftovers(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".tmp") || name.ends_with(".old") || name.ends_with(".partial") {
            found.push(entry.path().display().to_string());
        } else if entry.path().is_dir() {
            found.extend(leftovers(&entry.path()));
        }
    }
    found
}

/// A JSON file (or JSONL line) with the wall-clock fields removed: what two runs of the same
/// configuration must agree on exactly.
fn without_timing(mut v: serde_json::Value) -> serde_json::Value {
    if let Some(map) = v.as_object_mut() {
        map.remove("elapsed_s");
        map.remove("tokens_per_s");
    }
    v
}

/// Asserts that run directories `a` and `b` hold the same run: byte-identical weights,
/// optimizer states, configurations and tokenizers in `last/` and `best/`, the same states
/// and logs but for wall-clock fields, and no leftovers of interrupted writes in `b`.
pub fn assert_same_run(a: &Path, b: &Path, what: &str) {
    for checkpoint in ["last", "best"] {
        for file in [
            "model.safetensors",
            "optimizer.safetensors",
            "taskgate.toml",
            "tokenizer.json",
        ] {
            let (x, y) = (a.join(checkpoint).join(file), b.join(checkpoint).join(file));
            let (x, y) = (
                std::fs::read(&x).unwrap_or_else(|e| panic!("{what}: {}: {e}", x.display())),
                std::fs::read(&y).unwrap_or_else(|e| panic!("{what}: {}: {e}", y.display())),
            );
            assert!(x == y, "{what}: {checkpoint}/{file} differs");
        }
        let state = |dir: &Path| {
            let text = std::fs::read_to_string(dir.join(checkpoint).join("state.json")).unwrap();
            without_timing(serde_json::from_str(&text).unwrap())
        };
        assert_eq!(state(a), state(b), "{what}: {checkpoint}/state.json");
    }
    let log = |dir: &Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(dir.join("log.jsonl"))
            .unwrap()
            .lines()
            .map(|l| without_timing(serde_json::from_str(l).unwrap()))
            .collect()
    };
    assert_eq!(log(a), log(b), "{what}: log.jsonl");
    assert_eq!(
        std::fs::read(a.join("run.toml")).unwrap(),
        std::fs::read(b.join("run.toml")).unwrap(),
        "{what}: run.toml"
    );
    assert_eq!(leftovers(b), Vec::<String>::new(), "{what}: leftovers");
}
