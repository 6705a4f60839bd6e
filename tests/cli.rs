//! The `taskgate` binary: `info` lists the adapters and the chosen one; bad flags are errors
//! with a message, not panics. With TASKGATE_EXPECT_ADAPTER set (CI sets `llvmpipe`), the
//! listing must contain that adapter.

use std::process::Command;

fn taskgate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_taskgate"))
        .args(args)
        .env_remove("TASKGATE_BACKEND")
        .env_remove("TASKGATE_ADAPTER")
        .output()
        .expect("run taskgate")
}

#[test]
fn info_json_lists_adapters_limits_and_features() {
    let out = taskgate(&["info", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let adapters = report["adapters"].as_array().expect("adapters");
    assert!(!adapters.is_empty());
    let chosen = &report["chosen"];
    let name = chosen["adapter"]["name"].as_str().unwrap();
    assert!(
        adapters.iter().any(|a| a["name"] == name),
        "the chosen adapter is listed"
    );
    assert!(
        chosen["limits"]["max_storage_buffer_binding_size"]
            .as_u64()
            .unwrap()
            >= 1 << 20
    );
    assert!(chosen["features"].is_array() && chosen["missing_features"].is_array());
    if let Ok(expected) = std::env::var("TASKGATE_EXPECT_ADAPTER") {
        assert!(
            adapters
                .iter()
                .any(|a| a["name"].as_str().unwrap().contains(&expected)),
            "expected an adapter named like {expected}: {adapters:?}"
        );
    }
    let text = taskgate(&["info"]);
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("chosen:") && text.contains(name) && text.contains("max_buffer_size"),
        "{text}"
    );
}

#[test]
fn adapter_choice_can_be_forced_and_bad_choices_are_errors() {
    let out = taskgate(&["info", "--json", "--backend", "vulkan"]);
    if out.status.success() {
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["chosen"]["adapter"]["backend"], "vulkan");
    }
    let out = taskgate(&["info", "--backend", "cuda"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown backend 'cuda'"), "{err}");
    let out = taskgate(&["info", "--adapter", "no-such-adapter-anywhere"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no adapter matches") && err.contains("available adapters"),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_taskgate"))
        .args(["info", "--json"])
        .env("TASKGATE_ADAPTER", "no-such-adapter-anywhere")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "the environment variable forces the choice too"
    );
}

fn path(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

fn init(config: &std::path::Path, out: &std::path::Path) -> std::process::Output {
    taskgate(&["init", path(config), "--out", path(out)])
}

fn dump(
    model: &std::path::Path,
    batch: &std::path::Path,
    out: &std::path::Path,
) -> std::process::Output {
    taskgate(&[
        "dump",
        "--model",
        path(model),
        "--batch",
        path(batch),
        "--out",
        path(out),
    ])
}

const PARITY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/parity");
const MINILM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/all-MiniLM-L6-v2");

fn fresh_config(dir: &std::path::Path) -> std::path::PathBuf {
    let config = dir.join("tiny.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[encoder]
layers = 1
hidden = 16
heads = 2
intermediate = 32
max_positions = 32
tokenizer = "{PARITY}/tokenizer.json"
seed = 7

[[task]]
name = "sentiment"
kind = "classification"
labels = ["neg", "pos"]
head = {{ hidden = [8], activation = "tanh" }}

[[task]]
name = "tags"
kind = "token_classification"
labels = ["A", "B"]
gate = "vector"
"#
        ),
    )
    .unwrap();
    config
}

fn keys_of(path: &std::path::Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut keys: Vec<String> = st.names().into_iter().map(String::from).collect();
    keys.sort();
    keys
}

#[test]
fn init_and_dump_a_fresh_model() {
    let tmp = tempfile::tempdir().unwrap();
    let config = fresh_config(tmp.path());
    let model = tmp.path().join("model");
    let out = init(&config, &model);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for file in ["taskgate.toml", "model.safetensors", "tokenizer.json"] {
        assert!(model.join(file).exists(), "{file} written");
    }
    // The directory loads strictly and holds exactly the initialized parameters.
    let dir = taskgate::model::ModelDir::load(&model).unwrap();
    assert_eq!(dir.spec.encoder.hidden, 16);
    assert_eq!(
        dir.spec.encoder.vocab_size, 77,
        "vocabulary from the tokenizer"
    );
    let again = init(&config, &model);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));

    let batch = tmp.path().join("batch.jsonl");
    std::fs::write(
        &batch,
        "{\"text\": \"the movie was great\", \"labels\": {\"sentiment\": \"pos\", \"tags\": [\"A\", \"B\", \"A\", \"B\"]}}\n\
         {\"text\": \"slowly boring\", \"text_pair\": \"the plot\", \"labels\": {\"sentiment\": \"neg\"}}\n",
    )
    .unwrap();
    let dumped = tmp.path().join("dump.safetensors");
    let out = dump(&model, &batch, &dumped);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let keys = keys_of(&dumped);
    for key in [
        "input_ids",
        "token_type_ids",
        "attention_mask",
        "hidden",
        "logits.sentiment",
        "logits.tags",
        "gate.sentiment",
        "gate.tags",
        "loss.sentiment",
        "loss.tags",
        "loss",
    ] {
        assert!(keys.contains(&key.to_string()), "{key} in {keys:?}");
    }
    for spec in dir.spec.param_specs() {
        assert!(
            keys.contains(&format!("grad.{}", spec.name)),
            "grad.{}",
            spec.name
        );
    }
}

#[test]
fn bad_inputs_are_errors_that_say_where() {
    let tmp = tempfile::tempdir().unwrap();
    let config = fresh_config(tmp.path());
    let text = std::fs::read_to_string(&config).unwrap();
    let typo = tmp.path().join("typo.toml");
    std::fs::write(&typo, text.replace("seed = 7", "seeed = 7")).unwrap();
    let out = init(&typo, &tmp.path().join("m"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(2) && err.contains("typo.toml") && err.contains("seeed"),
        "{err}"
    );

    let model = tmp.path().join("model");
    assert!(init(&config, &model).status.success());
    let batch = tmp.path().join("bad.jsonl");
    std::fs::write(
        &batch,
        "{\"text\": \"fine\"}\n{\"text\": \"x\", \"labels\": {\"sentiment\": \"meh\"}}\n",
    )
    .unwrap();
    let out = dump(&model, &batch, &tmp.path().join("d"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(2)
            && err.contains("bad.jsonl:2")
            && err.contains("unknown label 'meh'"),
        "{err}"
    );

    // A checkpoint with a tensor missing, one extra and one reshaped: all three are named.
    let weights = model.join("model.safetensors");
    let mut params = taskgate::model::host::read_safetensors(&weights).unwrap();
    params.remove("tasks.sentiment.head.0.bias");
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = params
        .into_iter()
        .map(|(name, t)| match t {
            taskgate::model::host::FileTensor::Float(t, _) => (name, t.shape, t.data),
            _ => unreachable!(),
        })
        .collect();
    tensors.push(("tasks.extra.weight".into(), vec![1], vec![0.0]));
    let gamma = tensors
        .iter_mut()
        .find(|t| t.0 == "embeddings.LayerNorm.weight")
        .unwrap();
    gamma.1 = vec![4, 4];
    let views: Vec<(String, taskgate::model::host::OutTensor<'_>)> = tensors
        .iter()
        .map(|(n, s, d)| (n.clone(), taskgate::model::host::OutTensor::F32(s, d)))
        .collect();
    taskgate::model::host::write_safetensors(&weights, &views).unwrap();
    let err = taskgate::model::ModelDir::load(&model)
        .err()
        .unwrap()
        .to_string();
    for needle in [
        "missing tasks.sentiment.head.0.bias",
        "extra tasks.extra.weight",
        "shape of embeddings.LayerNorm.weight",
    ] {
        assert!(err.contains(needle), "'{needle}' in: {err}");
    }
}

#[test]
fn init_keeps_the_first_layers_of_a_pretrained_encoder() {
    if !std::path::Path::new(MINILM)
        .join("model.safetensors")
        .exists()
    {
        println!(
            "SKIPPED: {MINILM} is absent; fetch it with `python3 scripts/fetch_assets.py minilm`"
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("minilm.toml");
    std::fs::write(
        &config,
        format!("[encoder]\npretrained = \"{MINILM}\"\nlayers = 1\n\n[[task]]\nname = \"s\"\nkind = \"regression\"\n"),
    )
    .unwrap();
    let model = tmp.path().join("model");
    let out = init(&config, &model);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("1 layer(s) of 384")
            && stdout.contains("encoder.layer.1..=5")
            && stdout.contains("pooler.dense.weight"),
        "{stdout}"
    );
    let dir = taskgate::model::ModelDir::load(&model).unwrap();
    let pretrained =
        taskgate::model::hf::load_pretrained(std::path::Path::new(MINILM), Some(1)).unwrap();
    for (name, t) in &pretrained.params {
        assert_eq!(
            &dir.params[name].data, &t.data,
            "{name} copied from the checkpoint"
        );
    }
    let batch = tmp.path().join("b.jsonl");
    std::fs::write(
        &batch,
        "{\"text\": \"hello world\", \"labels\": {\"s\": 0.5}}\n",
    )
    .unwrap();
    let out = dump(&model, &batch, &tmp.path().join("d.safetensors"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
