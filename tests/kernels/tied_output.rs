//! The tied output projection with its chunked, fused cross-entropy (`nn::tied_output`):
//! loss, dx and d(word embeddings) against the f64 reference (`reference::loss::
//! tied_cross_entropy`, itself checked by finite differences), over awkward sizes (1 row,
//! prime vocabularies, vocabularies cut into several slices with a tail, chunks that do not
//! divide the rows, chunks on both sides of the transposed-logits threshold, a chunk with no
//! labelled row, a set with none).
//! Tolerance: 1e-5 absolute + 1e-4 relative.

use std::collections::BTreeMap;

use taskgate::model::host::HostTensor;
use taskgate::model::store::ParamStore;
use taskgate::nn::params::{Decay, Init, ParamBuilder};
use taskgate::nn::tied_output::TiedOutput;
use taskgate::ops::loss::CrossEntropyOptions;
use taskgate::reference::finite_difference;
use taskgate::reference::loss::tied_cross_entropy;

use crate::common::*;

/// Targets for `rows` rows over `vocab`: every third row ignored (-100), and with
/// `ignored_block`, rows 1..4 too (one whole chunk of 3 rows labels nothing).
fn targets(rows: usize, vocab: usize, ignored_block: bool) -> Vec<i32> {
    (0..rows)
        .map(|r| {
            if (r % 3 == 2 && rows > 1) || (ignored_block && (1..4).contains(&r)) {
                -100
            } else {
                ((r * 7 + 3) % vocab) as i32
            }
        })
        .collect()
}

/// One case: GPU loss, dx and dE vs the reference, chunked `chunk_rows` rows at a time.
fn check(rows: usize, d: usize, vocab: usize, chunk_rows: usize, smoothing: f32, seed: u64) {
    let mut r = rng(seed);
    let x = uniform(&mut r, rows * d, -1.0, 1.0);
    let e = uniform(&mut r, vocab * d, -1.0, 1.0);
    let t = targets(rows, vocab, rows >= 5);
    let (loss, dx, de) = tied_cross_entropy(&to_f64(&x), &to_f64(&e), &t, d, smoothing as f64);

    let pb = ParamBuilder::new();
    let word = pb.param("word", &[vocab, d], Init::Zeros, Decay::Yes);
    let host = BTreeMap::from([(
        "word".to_string(),
        HostTensor {
            shape: vec![vocab, d],
            data: e.clone(),
        },
    )]);
    let store = ParamStore::new(gpu(), &pb.specs(), &host).unwrap();
    let mut output = TiedOutput::new(word, vocab, d);
    output.chunk_bytes = chunk_rows * vocab * 4;
    assert_eq!(output.chunk_rows(), chunk_rows);
    let opts = CrossEntropyOptions {
        label_smoothing: smoothing,
        ..Default::default()
    };
    let got = output
        .loss_and_backward(
            &store.params,
            Some(&store.grads.get(&output.word).unwrap()),
            &upload(&x, &[rows, d]),
            &t,
            &opts,
        )
        .unwrap();
    let tag = format!("rows{rows} d{d} vocab{vocab} chunk{chunk_rows} smoothing{smoothing}");
    assert_close(
        &format!("{tag} loss"),
        &download(&got.loss),
        &[loss],
        1e-5,
        1e-4,
    );
    assert_close(&format!("{tag} dx"), &download(&got.dx), &dx, 1e-5, 1e-4);
    let grads = store.download_grads().unwrap();
    assert_close(&format!("{tag} dE"), &grads["word"].data, &de, 1e-5, 1e-4);

    // The logits of the decoding path are x E^T.
    let logits = download(
        &output
            .logits(&store.params, &upload(&x, &[rows, d]))
            .unwrap(),
    );
    let want: Vec<f64> = (0..rows * vocab)
        .map(|i| {
            let (row, v) = (i / vocab, i % vocab);
            (0..d)
                .map(|c| x[row * d + c] as f64 * e[v * d + c] as f64)
                .sum()
        })
        .collect();
    assert_close(&format!("{tag} logits"), &logits, &want, 1e-5, 1e-4);
}

#[test]
fn chunked_loss_and_gradients_match_reference() {
    for (i, &(rows, d, vocab, chunk, smoothing)) in [
        (1, 4, 1, 1, 0.0),
        (1, 5, 61, 4, 0.1),
        (7, 6, 61, 3, 0.0),
        (13, 8, 257, 5, 0.1),
        (13, 8, 257, 13, 0.1),
        (20, 12, 31, 64, 0.0),
        // the backward cuts vocabularies over 2,048 into slices (3 here, a tail of 7) ...
        (9, 8, 4099, 4, 0.0),
        // ... and at most 32 (a tail of 113), with an odd width.
        (5, 5, 70001, 5, 0.1),
        // chunks of 32 rows or more compute their logits transposed (E x^T) ...
        (37, 8, 4099, 64, 0.1),
        // ... next to shorter ones (33, 33 and 4 rows).
        (70, 6, 61, 33, 0.0),
    ]
    .iter()
    .enumerate()
    {
        check(rows, d, vocab, chunk, smoothing, 50 + i as u64);
    }
}

/// Without a gradient set only the loss is computed, and it is the same; a bad target is
/// named by its row in the whole set, not in its chunk.
#[test]
fn loss_without_backward_is_the_same() {
    let (rows, d, vocab) = (9, 4, 37);
    let mut r = rng(9);
    let x = uniform(&mut r, rows * d, -1.0, 1.0);
    let e = uniform(&mut r, vocab * d, -1.0, 1.0);
    let t = targets(rows, vocab, false);
    let pb = ParamBuilder::new();
    let word = pb.param("word", &[vocab, d], Init::Zeros, Decay::Yes);
    let host = BTreeMap::from([(
        "word".to_string(),
        HostTensor {
            shape: vec![vocab, d],
            data: e.clone(),
        },
    )]);
    let store = ParamStore::new(gpu(), &pb.specs(), &host).unwrap();
    let mut output = TiedOutput::new(word, vocab, d);
    output.chunk_bytes = 2 * vocab * 4;
    let opts = CrossEntropyOptions::default();
    let got = output
        .loss_and_backward(&store.params, None, &upload(&x, &[rows, d]), &t, &opts)
        .unwrap();
    let (loss, _, _) = tied_cross_entropy(&to_f64(&x), &to_f64(&e), &t, d, 0.0);
    assert_close("loss only", &download(&got.loss), &[loss], 1e-5, 1e-4);
    assert!(download(&store.grads.arenas[0]).iter().all(|&v| v == 0.0));
    // A set with no labelled row has no loss and no gradient.
    let none = vec![-100; rows];
    let dword = store.grads.get(&output.word).unwrap();
    let got = output
        .loss_and_backward(
            &store.params,
            Some(&dword),
            &upload(&x, &[rows, d]),
            &none,
            &opts,
        )
        .unwrap();
    assert_eq!(download(&got.loss), [0.0]);
    assert_eq!(download(&got.dx), vec![0.0; rows * d]);
    assert!(download(&store.grads.arenas[0]).iter().all(|&v| v == 0.0));
    // Bad targets are refused with the row named.
    let mut bad = t.clone();
    bad[4] = vocab as i32;
    let err = output
        .loss_and_backward(&store.params, None, &upload(&x, &[rows, d]), &bad, &opts)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("row 4"), "{err}");
}

#[test]
fn reference_matches_finite_differences() {
    let (rows, d, vocab) = (4, 3, 7);
    let mut r = rng(4);
    let x = to_f64(&uniform(&mut r, rows * d, -1.0, 1.0));
    let e = to_f64(&uniform(&mut r, vocab * d, -1.0, 1.0));
    let t = vec![1, -100, 6, 0];
    for smoothing in [0.0, 0.2] {
        let (_, dx, de) = tied_cross_entropy(&x, &e, &t, d, smoothing);
        let fx = finite_difference(&x, 1e-6, |x| tied_cross_entropy(x, &e, &t, d, smoothing).0);
        assert_grad_close("tied dx", &dx, &fx, 1e-7);
        let fe = finite_difference(&e, 1e-6, |e| tied_cross_entropy(&x, e, &t, d, smoothing).0);
        assert_grad_close("tied dE", &de, &fe, 1e-7);
    }
}
