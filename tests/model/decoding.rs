//! Cached greedy and beam decoding against PyTorch (tests/reference/decoder.py; fixture
//! tests/fixtures/decoder/decode.json, whose every deciding gap is > 1e-3): token-identical
//! outputs, beam scores within 1e-4; and the cache: each step's logits equal those of a full
//! teacher-forced forward over the prefix (within 1e-5).

use taskgate::model::generate::{Special, beam, greedy};
use taskgate::nn::Mode;
use taskgate::nn::decoder::{DecoderInputs, Memory};

use crate::common::{download, gpu, upload};
use crate::decoder::{FIXTURE, fixture_decoder, fixture_memory, tensors};

fn fixture_json() -> serde_json::Value {
    let text = std::fs::read_to_string(format!("{FIXTURE}/decode.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn tokens(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap() as u32)
        .collect()
}

const SPECIAL: Special = Special {
    bos: 2,
    eos: 3,
    pad: 0,
};

#[test]
fn greedy_and_beam_outputs_match_pytorch() {
    let (decoder, store) = fixture_decoder();
    let w = &store.params;
    let want = tensors("expected.safetensors");
    let (memory, mask, tk) = fixture_memory(&want);
    let batch = memory.len() / (tk * 24);
    let states = upload(&memory, &[batch * tk, 24]);
    let mask = upload(&mask, &[batch, tk]);
    let memory = Memory {
        states: &states,
        mask: &mask,
        tk,
    };
    let fixture = fixture_json();
    let max_new = fixture["max_new_tokens"].as_u64().unwrap() as usize;

    let got = gpu()
        .block_on(greedy(&decoder, w, &memory, SPECIAL, max_new))
        .unwrap()
        .unwrap()
        .into_iter()
        .map(|h| h.tokens)
        .collect::<Vec<_>>();
    let expected: Vec<Vec<u32>> = fixture["greedy"]["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let mut row = tokens(row);
            if let Some(end) = row.iter().position(|&t| t == SPECIAL.eos) {
                row.truncate(end + 1); // the reference pads after EOS
            }
            row
        })
        .collect();
    assert_eq!(got, expected, "greedy");

    for case in fixture["beam"].as_array().unwrap() {
        let k = case["beam_size"].as_u64().unwrap() as usize;
        let alpha = case["length_penalty"].as_f64().unwrap();
        let got = gpu()
            .block_on(beam(&decoder, w, &memory, SPECIAL, k, alpha, max_new))
            .unwrap()
            .unwrap();
        for (input, (ours, theirs)) in got
            .iter()
            .zip(case["hypotheses"].as_array().unwrap())
            .enumerate()
        {
            let theirs = theirs.as_array().unwrap();
            assert_eq!(ours.len(), theirs.len(), "beam {k} input {input}");
            for (h, want) in ours.iter().zip(theirs) {
                assert_eq!(
                    h.tokens,
                    tokens(&want["tokens"]),
                    "beam {k} alpha {alpha} input {input}"
                );
                let score = want["score"].as_f64().unwrap();
                assert!(
                    (h.score - score).abs() < 1e-4,
                    "beam {k} input {input}: score {} vs {score}",
                    h.score
                );
            }
        }
    }
}

/// Each cached step gives the logits a full forward over the prefix gives at its last
/// position, for every row (rows of different memory lengths).
#[test]
fn cached_steps_match_full_forward() {
    let (decoder, store) = fixture_decoder();
    let w = &store.params;
    let want = tensors("expected.safetensors");
    let (memory, mask, tk) = fixture_memory(&want);
    let (d, vocab) = (24, decoder.dims.vocab);
    let batch = memory.len() / (tk * d);
    let states = upload(&memory, &[batch * tk, d]);
    let mask = upload(&mask, &[batch, tk]);
    let memory = Memory {
        states: &states,
        mask: &mask,
        tk,
    };
    // Prefixes: BOS then a few arbitrary tokens per row.
    let fed: Vec<Vec<u32>> = vec![
        vec![2, 17, 40, 5, 59],
        vec![2, 3, 0, 11, 11],
        vec![2, 60, 1, 33, 8],
    ];
    let mut cache = decoder.start_cache(w, &memory, 1, fed[0].len()).unwrap();
    for t in 0..fed[0].len() {
        let step: Vec<u32> = fed.iter().map(|row| row[t]).collect();
        let logits = download(&decoder.step(w, &mut cache, &step).unwrap());
        let prefix: Vec<u32> = fed.iter().flat_map(|row| row[..=t].to_vec()).collect();
        let inputs =
            DecoderInputs::new(gpu(), &prefix, batch, decoder.dims.vocab, 0, false).unwrap();
        let (x, _) = decoder.forward(w, &inputs, &memory, Mode::Infer).unwrap();
        let full = download(&decoder.output.logits(w, &x).unwrap());
        for b in 0..batch {
            let last = (b * (t + 1) + t) * vocab;
            for v in 0..vocab {
                let (a, e) = (logits[b * vocab + v], full[last + v]);
                assert!(
                    (a - e).abs() < 1e-5,
                    "step {t} row {b} token {v}: {a} vs {e}"
                );
            }
        }
    }
    assert!(
        decoder.step(w, &mut cache, &[2, 2, 2]).is_err(),
        "the cache is full"
    );
}

/// Decoding without the cache (each step re-runs the decoder over the whole prefixes, beams
/// reordered by copying histories) gives the same tokens and scores as with it.
#[test]
fn uncached_decoding_equals_cached() {
    use taskgate::model::generate::{Uncached, beam_with, greedy_with};
    let (decoder, store) = fixture_decoder();
    let w = &store.params;
    let want = tensors("expected.safetensors");
    let (memory, mask, tk) = fixture_memory(&want);
    let batch = memory.len() / (tk * 24);
    let states = upload(&memory, &[batch * tk, 24]);
    let mask = upload(&mask, &[batch, tk]);
    let memory = Memory {
        states: &states,
        mask: &mask,
        tk,
    };
    let vocab = decoder.dims.vocab;
    let cached = gpu()
        .block_on(greedy(&decoder, w, &memory, SPECIAL, 8))
        .unwrap()
        .unwrap();
    let mut stepper = Uncached::new(&decoder, w, &memory, 1).unwrap();
    let uncached = gpu()
        .block_on(greedy_with(&mut stepper, w, vocab, SPECIAL, 8))
        .unwrap()
        .unwrap();
    for (a, b) in cached.iter().zip(&uncached) {
        assert_eq!(a.tokens, b.tokens);
        assert!((a.score - b.score).abs() < 1e-4);
    }
    let cached = gpu()
        .block_on(beam(&decoder, w, &memory, SPECIAL, 3, 1.0, 8))
        .unwrap()
        .unwrap();
    let mut stepper = Uncached::new(&decoder, w, &memory, 3).unwrap();
    let uncached = gpu()
        .block_on(beam_with(&mut stepper, w, vocab, SPECIAL, 3, 1.0, 8))
        .unwrap()
        .unwrap();
    for (a, b) in cached.iter().flatten().zip(uncached.iter().flatten()) {
        assert_eq!(a.tokens, b.tokens);
        assert!((a.score - b.score).abs() < 1e-4);
    }
}
