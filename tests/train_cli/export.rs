//! `taskgate export --format hf`: the directory holds exactly BertModel's weights (names and
//! shapes from transformers, `tests/fixtures/hf_export/bert_model_keys.json`), the model's
//! tensors bit for bit, the tokenizer files and the tasks; taskgate reads it back
//! (`--init-from`, `eval`); and, where `import transformers` works (the reference
//! environment, tests/reference/README.md), transformers loads it without warnings about
//! missing or unexpected weights and its `last_hidden_state` matches taskgate's `dump` within
//! 1e-4 on real tokens (`tests/reference/check_hf_export.py`), for a trained tiny model and
//! for all-MiniLM-L6-v2.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::common::*;
use crate::transfer::{source_config, target_config, tensors, write_batch};

const MINILM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/all-MiniLM-L6-v2");
const CHECK: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/reference/check_hf_export.py"
);
const KEYS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/hf_export/bert_model_keys.json"
);

fn transformers_available() -> bool {
    Command::new("python3")
        .args(["-c", "import transformers, torch, safetensors"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `taskgate dump` of `model` on `batch`, then the transformers check of `export` against it.
fn check_with_transformers(tmp: &Path, model: &Path, export: &Path, batch: &Path, what: &str) {
    let dump = tmp.join(format!("{what}.dump.safetensors"));
    ok(&taskgate(
        &[
            "dump",
            "--model",
            p(model),
            "--batch",
            p(batch),
            "--out",
            p(&dump),
        ],
        &[],
    ));
    if !transformers_available() {
        println!(
            "SKIPPED ({what}): transformers is not importable here; the reference environment \
             (tests/reference/README.md) runs {CHECK}"
        );
        return;
    }
    let out = Command::new("python3")
        .args([
            CHECK,
            "--export",
            p(export),
            "--dump",
            p(&dump),
            "--batch",
            p(batch),
        ])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{what}: {report} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{what}: {report}");
}

fn names_and_shapes(path: &Path) -> BTreeMap<String, Vec<usize>> {
    tensors(path)
        .into_iter()
        .map(|(n, (s, _))| (n, s))
        .collect()
}

#[test]
fn a_trained_model_exports_as_a_hugging_face_bert_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let config = source_config(tmp.path(), 6, 0);
    let run = tmp.path().join("run");
    ok(&taskgate(&["train", p(&config), "--out", p(&run)], &[]));
    let export = tmp.path().join("hf");
    let said = ok(&taskgate(
        &["export", p(&run), "--format", "hf", "--out", p(&export)],
        &[],
    ));
    assert!(said.contains("pooler untrained"), "{said}");
    let mut files: Vec<String> = std::fs::read_dir(&export)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "config.json",
            "model.safetensors",
            "special_tokens_map.json",
            "taskgate.toml",
            "taskgate_tasks.safetensors",
            "tokenizer.json",
            "tokenizer_config.json",
            "vocab.txt"
        ]
    );

    // Exactly BertModel's weights, as transformers names and shapes them.
    let keys: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(KEYS).unwrap()).unwrap();
    let want: BTreeMap<String, Vec<usize>> = keys["weights"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(n, s)| {
            let shape = s
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize);
            (n.clone(), shape.collect())
        })
        .collect();
    assert_eq!(names_and_shapes(&export.join("model.safetensors")), want);
    assert!(keys["persistent_buffers"].as_array().unwrap().is_empty());

    // The model's tensors, bit for bit: the encoder in model.safetensors, the tasks beside.
    let source = tensors(&run.join("best/model.safetensors"));
    let (encoder, tasks) = (
        tensors(&export.join("model.safetensors")),
        tensors(&export.join("taskgate_tasks.safetensors")),
    );
    for (name, value) in &source {
        let there = if name.starts_with("tasks.") {
            &tasks
        } else {
            &encoder
        };
        assert_eq!(Some(value), there.get(name), "{name}");
    }
    // ... and nothing else but BertModel's pooler, which taskgate does not train.
    assert!(
        encoder.contains_key("pooler.dense.weight") && encoder.contains_key("pooler.dense.bias")
    );
    assert_eq!(encoder.len() - 2 + tasks.len(), source.len());

    let json = |name: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(export.join(name)).unwrap()).unwrap()
    };
    let hf = json("config.json");
    assert_eq!(hf["model_type"], "bert");
    assert_eq!(hf["architectures"][0], "BertModel");
    assert_eq!(
        (
            hf["num_hidden_layers"].as_u64(),
            hf["hidden_size"].as_u64(),
            hf["vocab_size"].as_u64()
        ),
        (Some(2), Some(16), Some(77))
    );
    assert_eq!(hf["hidden_act"], "gelu");
    assert_eq!(hf["hidden_dropout_prob"], 0.1);
    let tokenizer = json("tokenizer_config.json");
    assert_eq!(tokenizer["tokenizer_class"], "BertTokenizer");
    assert_eq!(tokenizer["pad_token"], "[PAD]");
    assert_eq!(tokenizer["model_max_length"], 32);
    assert_eq!(
        std::fs::read_to_string(export.join("vocab.txt"))
            .unwrap()
            .lines()
            .count(),
        77
    );

    // taskgate reads the export back: eval runs on it, and --init-from takes the same
    // tensors from it as from the run.
    ok(&taskgate(&["eval", p(&export)], &[]));
    let target = target_config(tmp.path(), "target.toml", "", "");
    let (from_run, from_export) = (tmp.path().join("from-run"), tmp.path().join("from-export"));
    ok(&taskgate(
        &[
            "init",
            p(&target),
            "--init-from",
            p(&run),
            "--out",
            p(&from_run),
        ],
        &[],
    ));
    ok(&taskgate(
        &[
            "init",
            p(&target),
            "--init-from",
            p(&export),
            "--out",
            p(&from_export),
        ],
        &[],
    ));
    assert_eq!(
        std::fs::read(from_run.join("model.safetensors")).unwrap(),
        std::fs::read(from_export.join("model.safetensors")).unwrap()
    );

    // An export never replaces anything: a non-empty --out (the run itself, or an earlier
    // export) is refused, and nothing is left behind.
    for out in [&export, &run] {
        fails_with(
            &["export", p(&run), "--format", "hf", "--out", p(out)],
            &[],
            &["already exists and is not an empty directory"],
        );
    }
    // Nor does `init` write a model directory into an export (its tasks' file would go stale).
    fails_with(
        &["init", p(&target), "--out", p(&export), "--force"],
        &[],
        &["is a Hugging Face export"],
    );
    // A directory with tasks in both weight files is refused, not merged silently.
    let stale = tmp.path().join("stale");
    std::fs::create_dir(&stale).unwrap();
    for entry in std::fs::read_dir(&export).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), stale.join(entry.file_name())).unwrap();
    }
    std::fs::copy(
        run.join("best/model.safetensors"),
        stale.join("model.safetensors"),
    )
    .unwrap();
    fails_with(
        &["eval", p(&stale)],
        &[],
        &["holds task tensors", "one of them is stale"],
    );
    assert!(
        leftovers(tmp.path()).is_empty(),
        "{:?}",
        leftovers(tmp.path())
    );

    let batch = write_batch(tmp.path());
    check_with_transformers(tmp.path(), &run.join("best"), &export, &batch, "tiny");
}

#[test]
fn minilm_exports_with_the_names_of_its_own_checkpoint() {
    let minilm = Path::new(MINILM);
    if !minilm.join("model.safetensors").exists() {
        println!(
            "SKIPPED: {MINILM} is absent; fetch it with `python3 scripts/fetch_assets.py minilm`"
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("minilm.toml");
    std::fs::write(
        &config,
        format!(
            "[encoder]\npretrained = \"{MINILM}\"\n\n[[task]]\nname = \"sentiment\"\n\
             kind = \"classification\"\nlabels = [\"neg\", \"pos\"]\n"
        ),
    )
    .unwrap();
    let model = tmp.path().join("model");
    ok(&taskgate(&["init", p(&config), "--out", p(&model)], &[]));
    let export = tmp.path().join("hf");
    ok(&taskgate(
        &["export", p(&model), "--format", "hf", "--out", p(&export)],
        &[],
    ));
    // The names and shapes of the checkpoint Hugging Face publishes (less its position_ids
    // buffer, which transformers does not load).
    let mut published = names_and_shapes(&minilm.join("model.safetensors"));
    published.remove("embeddings.position_ids");
    assert_eq!(
        names_and_shapes(&export.join("model.safetensors")),
        published
    );
    let batch = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/minilm/sentences.jsonl");
    check_with_transformers(tmp.path(), &model, &export, &batch, "minilm");
}
