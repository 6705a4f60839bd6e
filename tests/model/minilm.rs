//! all-MiniLM-L6-v2 loaded from its Hugging Face directory gives the hidden states of
//! Hugging Face's BertModel (float64, fixture by tests/reference/make_minilm_fixture.py)
//! within 1e-4 absolute. The 90 MB model is fetched by `python3 scripts/fetch_assets.py
//! minilm` (CI does); without it the test says so and passes.

use std::path::Path;

use safetensors::SafeTensors;
use taskgate::data::{collate, read_examples};
use taskgate::model::hf::load_pretrained;
use taskgate::model::spec::ModelSpec;
use taskgate::model::{DeviceBatch, MultiTaskModel};
use taskgate::nn::Mode;
use taskgate::tokenize::TextTokenizer;

use crate::common::gpu;

const MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/all-MiniLM-L6-v2");
const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/minilm");

#[test]
fn minilm_hidden_states_match_hugging_face() {
    let dir = Path::new(MODEL);
    if !dir.join("model.safetensors").exists() {
        println!(
            "SKIPPED: {MODEL} is absent; fetch it with `python3 scripts/fetch_assets.py minilm`"
        );
        return;
    }
    let mut pretrained = load_pretrained(dir, None).unwrap();
    pretrained.dims.max_length = pretrained.dims.max_positions;
    let spec = ModelSpec {
        encoder: pretrained.dims.clone(),
        tasks: Vec::new(),
    };
    let tokenizer =
        TextTokenizer::from_file(&dir.join("tokenizer.json"), spec.encoder.max_length).unwrap();
    let examples =
        read_examples(&Path::new(FIXTURE).join("sentences.jsonl"), &[], &tokenizer).unwrap();
    let batch = collate(&examples, &[], tokenizer.pad_id());

    let bytes = std::fs::read(Path::new(FIXTURE).join("expected.safetensors")).unwrap();
    let want = SafeTensors::deserialize(&bytes).unwrap();
    let ids: Vec<i32> = bytemuck::pod_collect_to_vec(want.tensor("input_ids").unwrap().data());
    assert_eq!(
        ids,
        batch.ids.iter().map(|&i| i as i32).collect::<Vec<_>>(),
        "tokenization"
    );
    let hidden_want: Vec<f32> = bytemuck::pod_collect_to_vec(want.tensor("hidden").unwrap().data());

    let model = MultiTaskModel::new(gpu(), spec.clone(), &pretrained.params).unwrap();
    let device_batch = DeviceBatch::new(gpu(), &batch, &spec.encoder, false).unwrap();
    // Both attention paths: the kept-for-backward chain and the fused inference kernel.
    for mode in [Mode::Eval, Mode::Infer] {
        let pass = model.forward(&device_batch, mode, None).unwrap();
        let hidden: Vec<f32> = pass.hidden.to_vec().unwrap();
        assert_eq!(hidden.len(), hidden_want.len());
        let d = spec.encoder.hidden;
        let (mut worst_real, mut worst_pad) = (0.0f32, 0.0f32);
        for (i, (a, b)) in hidden.iter().zip(&hidden_want).enumerate() {
            let err = (a - b).abs();
            if batch.attention[i / d] != 0 {
                worst_real = worst_real.max(err);
            } else {
                worst_pad = worst_pad.max(err);
            }
        }
        println!(
            "worst parity minilm hidden {mode:?}: max abs {worst_real:.2e} on tokens, {worst_pad:.2e} on padding"
        );
        assert!(
            worst_real <= 1e-4 && worst_pad <= 1e-4,
            "{mode:?}: tokens {worst_real:e}, padding {worst_pad:e}"
        );
    }
}
