//! `taskgate dump` against PyTorch (tests/reference/multitask.py, float64) on a small random
//! model with four tasks of every kind, both gate modes and none, cls and mean pooling, a
//! text pair and padding. Tolerances: hidden, logits, gates and losses within 1e-4 absolute;
//! every parameter gradient within 1e-3 norm-wise relative. The key-bias gradients are zero
//! in exact arithmetic (softmax ignores a constant per row), so they are checked as
//! |grad| <= 1e-6 instead of relatively.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::SafeTensors;
use taskgate::data::read_examples;
use taskgate::model::ModelDir;
use taskgate::model::dump::{DumpData, dump};

use crate::common::gpu;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/parity");

fn expected(file: &str) -> BTreeMap<String, (Vec<usize>, Vec<f64>)> {
    let bytes = std::fs::read(Path::new(FIXTURE).join(file)).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, v)| {
            let data: Vec<f64> = match v.dtype() {
                safetensors::Dtype::F32 => bytemuck::pod_collect_to_vec::<u8, f32>(v.data())
                    .iter()
                    .map(|&x| x as f64)
                    .collect(),
                safetensors::Dtype::I32 => bytemuck::pod_collect_to_vec::<u8, i32>(v.data())
                    .iter()
                    .map(|&x| x as f64)
                    .collect(),
                other => panic!("unexpected dtype {other:?} for {name}"),
            };
            (name, (v.shape().to_vec(), data))
        })
        .collect()
}

fn family(name: &str) -> &str {
    name.split('.').next().unwrap()
}

/// Worst error per family: (max abs error, worst norm-wise relative error, key).
fn check(batch_file: &str, expected_file: &str) {
    let dir = ModelDir::load(Path::new(FIXTURE)).unwrap();
    let examples = read_examples(
        &Path::new(FIXTURE).join(batch_file),
        &dir.spec.tasks,
        &dir.tokenizer,
    )
    .unwrap();
    let ours = dump(gpu(), &dir, &examples).unwrap();
    let want = expected(expected_file);
    assert_eq!(
        ours.len(),
        want.len(),
        "same tensors: ours {:?}",
        ours.iter().map(|t| &t.0).collect::<Vec<_>>()
    );
    let mut worst: BTreeMap<String, (f64, f64, String)> = BTreeMap::new();
    for (name, shape, data) in &ours {
        let (want_shape, want_data) = want
            .get(name)
            .unwrap_or_else(|| panic!("PyTorch has no {name}"));
        assert_eq!(shape, want_shape, "shape of {name}");
        let got: Vec<f64> = match data {
            DumpData::F32(v) => v.iter().map(|&x| x as f64).collect(),
            DumpData::I32(v) => {
                let v: Vec<f64> = v.iter().map(|&x| x as f64).collect();
                assert_eq!(&v, want_data, "{name} (tokenization) differs");
                continue;
            }
        };
        let max_abs = got
            .iter()
            .zip(want_data)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        let diff_norm = got
            .iter()
            .zip(want_data)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>()
            .sqrt();
        let norm = want_data.iter().map(|b| b * b).sum::<f64>().sqrt();
        let rel = if norm > 0.0 {
            diff_norm / norm
        } else {
            diff_norm
        };
        if family(name) == "grad" {
            if name.ends_with("attention.self.key.bias") {
                assert!(max_abs <= 1e-6, "{name}: |grad| {max_abs:e} should vanish");
            } else {
                assert!(
                    rel <= 1e-3,
                    "{name}: norm-wise relative error {rel:e} > 1e-3"
                );
                let w = worst
                    .entry("grad".into())
                    .or_insert((0.0, 0.0, String::new()));
                if rel > w.1 {
                    *w = (w.0.max(max_abs), rel, name.clone());
                } else {
                    w.0 = w.0.max(max_abs);
                }
            }
        } else {
            assert!(max_abs <= 1e-4, "{name}: max abs error {max_abs:e} > 1e-4");
            let w = worst
                .entry(family(name).into())
                .or_insert((0.0, 0.0, String::new()));
            if max_abs >= w.0 {
                *w = (max_abs, w.1.max(rel), name.clone());
            }
        }
    }
    for (fam, (abs, rel, key)) in worst {
        println!(
            "worst parity {batch_file} {fam}: max abs {abs:.2e}, norm-wise rel {rel:.2e} ({key})"
        );
    }
}

#[test]
fn dump_matches_pytorch_on_a_full_batch() {
    check("batch.jsonl", "expected.safetensors");
}

#[test]
fn dump_matches_pytorch_when_a_task_has_no_labels() {
    check("batch_partial.jsonl", "expected_partial.safetensors");
}
