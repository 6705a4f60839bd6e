//! The browser page's engine (`taskgate::session`), run natively on the same async code the
//! page awaits: a model from file contents, predictions equal to `infer`'s, training data
//! errors naming the line, fine-tuning that lowers the loss, and the exported weights.

use std::path::Path;

use taskgate::data::{Example, collate};
use taskgate::gpu::Gpu;
use taskgate::model::host::parse_params;
use taskgate::model::infer::{InferOptions, infer};
use taskgate::model::{ModelDir, MultiTaskModel};
use taskgate::session::{Session, TrainSettings};

const PARITY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/parity");

fn read(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(PARITY).join(name)).unwrap()
}

fn open(gpu: &Gpu) -> Session {
    let config = String::from_utf8(read("taskgate.toml")).unwrap();
    Session::load(
        gpu,
        &config,
        &read("model.safetensors"),
        read("tokenizer.json"),
    )
    .unwrap()
}

#[test]
fn predictions_match_native_inference() {
    let gpu = Gpu::from_env_blocking().unwrap();
    let session = open(&gpu);
    let summary = session.summary();
    assert_eq!(summary["tasks"].as_array().unwrap().len(), 4);
    assert_eq!(summary["tasks"][1]["gate"], "vector");
    assert_eq!(summary["tasks"][2]["kind"], "token_classification");

    let text = "The movie was great !";
    let got = gpu.block_on(session.predict(text)).unwrap().unwrap();

    let dir = ModelDir::load(Path::new(PARITY)).unwrap();
    let model = MultiTaskModel::new(&gpu, dir.spec.clone(), &dir.params).unwrap();
    let example = Example {
        text: text.into(),
        text_pair: None,
        encoded: dir.tokenizer.encode(text, None).unwrap(),
        labels: vec![None; 4],
    };
    let n = example.encoded.ids.len();
    let batch = collate(&[example], &dir.spec.tasks, dir.tokenizer.pad_id());
    let options = InferOptions {
        with_gates: true,
        beam: None,
    };
    let outputs = infer(&model, &dir.tokenizer, &batch, None, options).unwrap();

    assert_eq!(got["tokens"].as_array().unwrap().len(), n);
    assert_eq!(got["words"].as_array().unwrap().len(), 5);
    for (i, task) in dir.spec.tasks.iter().enumerate() {
        let want = &outputs[i].as_ref().unwrap().logits;
        let flat: Vec<f64> = match got["logits"][&task.name].as_array().unwrap() {
            rows if task.kind.is_sequence_level() => {
                rows.iter().map(|v| v.as_f64().unwrap()).collect()
            }
            rows => {
                assert_eq!(rows.len(), n, "{}: one row per token", task.name);
                rows.iter()
                    .flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()))
                    .collect()
            }
        };
        assert_eq!(flat.len(), want.len(), "{}", task.name);
        for (a, b) in flat.iter().zip(want) {
            assert!((a - *b as f64).abs() < 1e-6, "{}: {a} vs {b}", task.name);
        }
        let gates = got["gates"].get(&task.name);
        assert_eq!(gates.is_some(), task.name != "topics", "{}", task.name);
        if let Some(g) = gates {
            assert_eq!(g.as_array().unwrap().len(), n);
        }
    }
    let tags = got["predictions"]["pos"]["tags"].as_array().unwrap();
    assert_eq!(tags.len(), 5, "one tag per word");
}

#[test]
fn bad_training_data_and_settings_are_errors() {
    let gpu = Gpu::from_env_blocking().unwrap();
    let mut session = open(&gpu);
    let data = "{\"text\": \"fine\", \"labels\": {\"sentiment\": \"pos\"}}\n\
                {\"text\": \"odd\", \"labels\": {\"sentiment\": \"happy\"}}\n";
    let error = session.set_training_data(data, "mine.jsonl").unwrap_err();
    let message = format!("{error:#}");
    assert!(message.contains("mine.jsonl:2"), "{message}");
    assert!(message.contains("happy"), "{message}");

    let error = session
        .start_training(&TrainSettings::default())
        .unwrap_err();
    assert!(format!("{error}").contains("no training data"), "{error}");
    assert!(gpu.block_on(session.train_step()).unwrap().is_err());

    let error = TrainSettings::parse(r#"{"steps": 10, "learning_rate": 1}"#).unwrap_err();
    assert!(format!("{error}").contains("learning_rate"), "{error}");
    assert!(TrainSettings::parse(r#"{"steps": 0}"#).is_err());
    assert!(TrainSettings::parse(r#"{"lr": -1}"#).is_err());
    let error = TrainSettings::parse(r#"{"batch_size": 2147483648}"#).unwrap_err();
    assert!(format!("{error}").contains("batch_size"), "{error}");
    assert_eq!(TrainSettings::parse("{}").unwrap().steps, 200);

    // The session still works after every error.
    assert!(gpu.block_on(session.predict("The movie")).unwrap().is_ok());
}

#[test]
fn fine_tuning_lowers_the_loss_and_exports_the_weights() {
    let gpu = Gpu::from_env_blocking().unwrap();
    let mut session = open(&gpu);
    let data = String::from_utf8(read("batch.jsonl")).unwrap();
    let counts = session.set_training_data(&data, "batch.jsonl").unwrap();
    assert!(counts["per_task"]["sentiment"].as_u64().unwrap() > 0);

    let settings = TrainSettings::parse(r#"{"steps": 40, "lr": 0.003, "batch_size": 4}"#).unwrap();
    session.start_training(&settings).unwrap();
    let mut losses = Vec::new();
    for step in 1..=40 {
        let out = gpu.block_on(session.train_step()).unwrap().unwrap();
        assert_eq!(out["step"].as_u64().unwrap(), step);
        losses.push(out["loss"].as_f64().unwrap());
    }
    let first: f64 = losses[..8].iter().sum::<f64>() / 8.0;
    let last: f64 = losses[32..].iter().sum::<f64>() / 8.0;
    assert!(
        last < 0.7 * first,
        "loss {first:.4} -> {last:.4}: {losses:?}"
    );
    let done = gpu.block_on(session.train_step()).unwrap().unwrap_err();
    assert!(format!("{done}").contains("done"), "{done}");

    // The exported file holds the trained weights, under the names taskgate reads.
    let bytes = gpu.block_on(session.export_safetensors()).unwrap().unwrap();
    let dir = ModelDir::load(Path::new(PARITY)).unwrap();
    let exported = parse_params(&bytes, &dir.spec.param_specs(), "export").unwrap();
    assert_eq!(exported.len(), dir.params.len());
    let changed = exported
        .iter()
        .filter(|(name, t)| t.data != dir.params[*name].data)
        .count();
    assert!(changed > exported.len() / 2, "{changed} tensors changed");
    // Restarting keeps the trained weights.
    session.start_training(&settings).unwrap();
    let again = gpu.block_on(session.export_safetensors()).unwrap().unwrap();
    assert_eq!(again, bytes);
}

#[test]
fn block_on_refuses_a_future_the_gpu_cannot_finish() {
    let gpu = Gpu::from_env_blocking().unwrap();
    let error = gpu.block_on(std::future::pending::<()>()).unwrap_err();
    assert!(
        format!("{error}").contains("something other than this GPU"),
        "{error}"
    );
    // A real readback still completes.
    let t = taskgate::Tensor::from_slice(&gpu, &[1.0f32, 2.0, 3.0], &[3]).unwrap();
    assert_eq!(
        gpu.block_on(t.to_vec_async::<f32>()).unwrap().unwrap(),
        [1.0, 2.0, 3.0]
    );
}
