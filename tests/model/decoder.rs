//! The generation decoder against PyTorch (tests/reference/decoder.py, float64; fixture made
//! by make_decoder_fixture.py): a 2-layer decoder over a padded memory with padded decoder
//! rows. Logits within 1e-4 absolute; losses within 1e-5; every parameter gradient, the tied
//! word embeddings' and the memory's within 1e-3 norm-wise relative. The key-bias gradients
//! are zero in exact arithmetic (softmax ignores a constant per row), so they are checked as
//! |grad| <= 1e-6 instead.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::SafeTensors;
use taskgate::model::host::{HostParams, HostTensor};
use taskgate::model::store::ParamStore;
use taskgate::nn::decoder::{Decoder, DecoderDims, DecoderInputs, Memory};
use taskgate::nn::decoder_layer::DecoderLayerDims;
use taskgate::nn::device_batch::MASKED;
use taskgate::nn::params::{Decay, Init, ParamBuilder};
use taskgate::nn::{Mode, params::ArenaSet};
use taskgate::ops::loss::CrossEntropyOptions;

use crate::common::{download, gpu, upload};

pub const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/decoder");

/// Name -> (shape, values as f64) of a fixture file.
pub fn tensors(file: &str) -> BTreeMap<String, (Vec<usize>, Vec<f64>)> {
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

/// The fixture's decoder: V 61, d 24, 4 heads, 2 layers, intermediate 40, max_length 9.
pub fn fixture_dims() -> DecoderDims {
    DecoderDims {
        vocab: 61,
        layers: 2,
        max_length: 9,
        layer: DecoderLayerDims {
            hidden: 24,
            heads: 4,
            intermediate: 40,
            layer_norm_eps: 1e-12,
            dropout: 0.0,
            attention_dropout: 0.0,
        },
    }
}

/// The fixture's decoder with its weights on the GPU.
pub fn fixture_decoder() -> (Decoder, ParamStore) {
    let dims = fixture_dims();
    let pb = ParamBuilder::new();
    let word = pb.param(
        "word_embeddings",
        &[dims.vocab, dims.layer.hidden],
        Init::Zeros,
        Decay::Yes,
    );
    let decoder = Decoder::new(&pb.pp("decoder"), &dims, word, 100);
    let host: HostParams = tensors("weights.safetensors")
        .into_iter()
        .map(|(name, (shape, data))| {
            let data = data.into_iter().map(|v| v as f32).collect();
            (name, HostTensor { shape, data })
        })
        .collect();
    assert_eq!(
        pb.specs().len(),
        host.len(),
        "the fixture has every parameter, no more"
    );
    let store = ParamStore::new(gpu(), &pb.specs(), &host).unwrap();
    (decoder, store)
}

/// The fixture's memory `[B*Ts, d]` and its additive mask `[B, Ts]`, and Ts.
pub fn fixture_memory(
    want: &BTreeMap<String, (Vec<usize>, Vec<f64>)>,
) -> (Vec<f32>, Vec<f32>, usize) {
    let (shape, memory) = &want["memory"];
    let mask: Vec<f32> = want["memory_mask"]
        .1
        .iter()
        .map(|&m| if m != 0.0 { 0.0 } else { MASKED })
        .collect();
    (memory.iter().map(|&v| v as f32).collect(), mask, shape[1])
}

fn worst(got: &[f32], want: &[f64]) -> (f64, f64) {
    assert_eq!(got.len(), want.len());
    let abs = got
        .iter()
        .zip(want)
        .map(|(&a, &b)| (a as f64 - b).abs())
        .fold(0.0, f64::max);
    let diff: f64 = got
        .iter()
        .zip(want)
        .map(|(&a, &b)| (a as f64 - b).powi(2))
        .sum();
    let norm: f64 = want.iter().map(|b| b * b).sum();
    (abs, (diff / norm.max(1e-300)).sqrt())
}

fn run(
    decoder: &Decoder,
    w: &ArenaSet,
    g: Option<&ArenaSet>,
    smoothing: f32,
) -> (Vec<f32>, f32, Option<Vec<f32>>) {
    let want = tensors("expected.safetensors");
    let (shape, ids) = &want["input_ids"];
    let (batch, seq) = (shape[0], shape[1]);
    let ids: Vec<u32> = ids.iter().map(|&v| v as u32).collect();
    let labels: Vec<i32> = want["labels"].1.iter().map(|&v| v as i32).collect();
    let (memory, mask, tk) = fixture_memory(&want);
    let d = decoder.dims.layer.hidden;
    let inputs =
        DecoderInputs::new(gpu(), &ids, batch, decoder.dims.vocab, 0, g.is_some()).unwrap();
    let states = upload(&memory, &[batch * tk, d]);
    let mask = upload(&mask, &[batch, tk]);
    let memory = Memory {
        states: &states,
        mask: &mask,
        tk,
    };
    let (x, saved) = decoder.forward(w, &inputs, &memory, Mode::Eval).unwrap();
    let logits = download(&decoder.output.logits(w, &x).unwrap());
    assert_eq!(logits.len(), batch * seq * decoder.dims.vocab);
    let opts = CrossEntropyOptions {
        label_smoothing: smoothing,
        ..Default::default()
    };
    let dword = g.map(|g| g.get(&decoder.output.word).unwrap());
    let out = decoder
        .output
        .loss_and_backward(w, dword.as_ref(), &x, &labels, &opts)
        .unwrap();
    let loss = download(&out.loss)[0];
    let dmemory = g.map(|g| {
        let dm = decoder
            .backward(w, g, out.dx, &saved, &inputs, &memory, Mode::Eval)
            .unwrap();
        download(&dm)
    });
    (logits, loss, dmemory)
}

#[test]
fn decoder_matches_pytorch() {
    let (decoder, store) = fixture_decoder();
    let want = tensors("expected.safetensors");
    let (logits, loss, _) = run(&decoder, &store.params, None, 0.0);
    let (abs, _) = worst(&logits, &want["logits"].1);
    eprintln!("logits: max abs error {abs:.2e}");
    assert!(abs < 1e-4, "logits off by {abs:e}");
    assert!(
        (loss as f64 - want["loss"].1[0]).abs() < 1e-5,
        "loss {loss} vs {}",
        want["loss"].1[0]
    );

    store.zero_grads();
    let (_, loss, dmemory) = run(&decoder, &store.params, Some(&store.grads), 0.1);
    let smoothed = want["loss_smoothed"].1[0];
    assert!(
        (loss as f64 - smoothed).abs() < 1e-5,
        "smoothed loss {loss} vs {smoothed}"
    );
    let (_, rel) = worst(&dmemory.unwrap(), &want["grad.memory"].1);
    assert!(rel < 1e-3, "d(memory) off by {rel:e} (norm-relative)");
    let grads = store.download_grads().unwrap();
    let mut checked = 0;
    let mut worst_rel = (rel, "memory".to_string());
    for (name, got) in &grads {
        let (_, expected) = &want[&format!("grad.{name}")];
        let (abs, rel) = worst(&got.data, expected);
        if name.ends_with("key.bias") {
            assert!(abs <= 1e-6, "{name}: {abs:e} (zero in exact arithmetic)");
        } else {
            assert!(rel < 1e-3, "{name}: norm-relative error {rel:e}");
            if rel > worst_rel.0 {
                worst_rel = (rel, name.clone());
            }
        }
        checked += 1;
    }
    assert_eq!(checked, grads.len());
    eprintln!(
        "gradients: worst norm-relative error {:.2e} ({})",
        worst_rel.0, worst_rel.1
    );
    assert!(grads.contains_key("word_embeddings"));
}
