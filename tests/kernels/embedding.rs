//! Embedding gather and its scatter-add backward, with heavily repeated ids. Tolerance:
//! forward exact; backward 1e-6 * (1 + repeats).

use taskgate::ops::embedding::{
    EmbeddingGradIndex, embedding_backward_into, embedding_forward, group_ids,
};
use taskgate::reference::{dot, embedding, embedding_backward, finite_difference};
use taskgate::{DType, Tensor};

use crate::common::*;

fn ids_for(seed: u64, tokens: usize, vocab: usize) -> Vec<u32> {
    let mut r = rng(seed);
    // Half the tokens share id 3 (like [PAD] or [CLS]); the rest are random.
    (0..tokens)
        .map(|i| {
            if i % 2 == 0 {
                3
            } else {
                (uniform(&mut r, 1, 0.0, vocab as f32)[0] as u32).min(vocab as u32 - 1)
            }
        })
        .collect()
}

const CASES: &[(usize, usize, usize)] = &[(1, 4, 1), (17, 11, 5), (300, 97, 13), (1000, 30, 384)];

#[test]
fn forward_gathers_rows() {
    for (i, &(tokens, vocab, dim)) in CASES.iter().enumerate() {
        let ids = ids_for(i as u64, tokens, vocab);
        let table = uniform(&mut rng(10 + i as u64), vocab * dim, -1.0, 1.0);
        let want = embedding(&ids, &to_f64(&table), dim);
        let out = embedding_forward(
            &Tensor::from_slice(gpu(), &ids, &[tokens]).unwrap(),
            &upload(&table, &[vocab, dim]),
        )
        .unwrap();
        assert_close(
            &format!("embedding tokens{tokens} vocab{vocab} dim{dim}"),
            &download(&out),
            &want,
            0.0,
            0.0,
        );
    }
}

#[test]
fn reference_backward_matches_finite_differences() {
    let (vocab, dim) = (5, 3);
    let ids = vec![1u32, 4, 1, 1, 0];
    let table = to_f64(&uniform(&mut rng(1), vocab * dim, -1.0, 1.0));
    let w = to_f64(&uniform(&mut rng(2), ids.len() * dim, -1.0, 1.0));
    let analytic = embedding_backward(&ids, &w, vocab, dim);
    let numeric = finite_difference(&table, 1e-6, |t| dot(&w, &embedding(&ids, t, dim)));
    assert_grad_close("embedding dtable", &analytic, &numeric, 1e-8);
}

#[test]
fn backward_adds_repeated_ids_into_the_table_gradient() {
    for (i, &(tokens, vocab, dim)) in CASES.iter().enumerate() {
        let ids = ids_for(50 + i as u64, tokens, vocab);
        let dout = uniform(&mut rng(60 + i as u64), tokens * dim, -1.0, 1.0);
        let prior = uniform(&mut rng(70 + i as u64), vocab * dim, -1.0, 1.0);
        let grad = embedding_backward(&ids, &to_f64(&dout), vocab, dim);
        let want: Vec<f64> = grad
            .iter()
            .zip(&prior)
            .map(|(g, p)| g + *p as f64)
            .collect();
        let index = EmbeddingGradIndex::new(gpu(), &ids, vocab).unwrap();
        let dtable = upload(&prior, &[vocab, dim]);
        embedding_backward_into(&index, &upload(&dout, &[tokens, dim]), &dtable).unwrap();
        let repeats = tokens as f64 / 2.0;
        assert_close(
            &format!("embedding backward tokens{tokens} vocab{vocab} dim{dim}"),
            &download(&dtable),
            &want,
            1e-6 * (1.0 + repeats),
            1e-6,
        );
    }
}

#[test]
fn grouping_and_bad_ids() {
    let (unique, offsets, positions) = group_ids(&[2, 0, 2, 2, 1]);
    assert_eq!(unique, vec![0, 1, 2]);
    assert_eq!(offsets, vec![0, 1, 2, 5]);
    assert_eq!(positions, vec![1, 4, 0, 2, 3]);
    let err = EmbeddingGradIndex::new(gpu(), &[0, 9], 5).err().unwrap();
    assert!(err.to_string().contains("token id 9"), "{err}");
    let table = Tensor::zeros(gpu(), &[5, 2], DType::F32).unwrap();
    let ids_f32 = upload(&[0.0], &[1]);
    assert!(embedding_forward(&ids_f32, &table).is_err());
}

#[test]
fn a_skipped_id_adds_nothing() {
    let (vocab, dim) = (6, 3);
    let ids = vec![0u32, 2, 0, 5, 2, 0];
    let dout = uniform(&mut rng(3), ids.len() * dim, -1.0, 1.0);
    let mut want = embedding_backward(&ids, &to_f64(&dout), vocab, dim);
    want[..dim].fill(0.0);
    let index = EmbeddingGradIndex::skipping(gpu(), &ids, vocab, Some(0)).unwrap();
    let dtable = Tensor::zeros(gpu(), &[vocab, dim], DType::F32).unwrap();
    embedding_backward_into(&index, &upload(&dout, &[ids.len(), dim]), &dtable).unwrap();
    assert_close(
        "embedding backward skipping id 0",
        &download(&dtable),
        &want,
        1e-6,
        1e-6,
    );
}
