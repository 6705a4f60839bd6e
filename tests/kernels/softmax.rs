//! Masked, scaled row softmax and its backward. Tolerance: 1e-6 absolute + 1e-5 relative.

use taskgate::ops::RowStrategy;
use taskgate::ops::softmax::{Causal, RowMask, softmax_backward_with, softmax_forward_with};
use taskgate::reference::softmax::{softmax, softmax_backward as ref_backward, softmax_causal};
use taskgate::reference::{dot, finite_difference};

use crate::common::*;

/// (rows, cols): 1, primes, wider than the largest workgroup (256).
const SHAPES: &[(usize, usize)] = &[(1, 1), (1, 7), (5, 33), (13, 257), (3, 1000), (64, 64)];

/// Both row strategies where the row length allows the per-invocation one.
fn strategies(cols: usize) -> Vec<RowStrategy> {
    let mut s = vec![RowStrategy::Workgroup];
    if cols.is_multiple_of(4) {
        s.push(RowStrategy::PerInvocation);
    }
    s
}

#[test]
fn forward_matches_reference() {
    for (i, &(rows, cols)) in SHAPES.iter().enumerate() {
        for (scale, strategy) in [1.0f32, 0.125]
            .into_iter()
            .flat_map(|sc| strategies(cols).into_iter().map(move |st| (sc, st)))
        {
            let mut r = rng(i as u64);
            let x = uniform(&mut r, rows * cols, -8.0, 8.0);
            let want = softmax(&to_f64(&x), cols, scale as f64, None);
            let y = softmax_forward_with(
                &upload(&x, &[rows, cols]),
                scale,
                None,
                None,
                None,
                strategy,
            )
            .unwrap()
            .0;
            assert_close(
                &format!("softmax rows{rows} cols{cols} scale{scale} {strategy:?}"),
                &download(&y),
                &want,
                1e-6,
                1e-5,
            );
        }
    }
}

/// Attention layout: scores [batch, heads, queries, keys], key-padding mask [batch, keys].
#[test]
fn padding_mask_is_shared_by_heads_and_queries() {
    for keys in [7, 8] {
        for strategy in strategies(keys) {
            let (batch, heads, queries) = (2, 3, 5);
            let rows = batch * heads * queries;
            let mut r = rng(42);
            let x = uniform(&mut r, rows * keys, -4.0, 4.0);
            let mut mask = vec![0.0f32; batch * keys];
            for k in 4..keys {
                mask[keys + k] = -1e30; // the second sequence has 4 real tokens
            }
            let want = softmax(
                &to_f64(&x),
                keys,
                0.5,
                Some((&to_f64(&mask), heads * queries)),
            );
            let y = softmax_forward_with(
                &upload(&x, &[batch, heads, queries, keys]),
                0.5,
                Some(RowMask {
                    mask: &upload(&mask, &[batch, keys]),
                    rows_per_mask: heads * queries,
                }),
                None,
                None,
                strategy,
            )
            .unwrap()
            .0;
            let got = download(&y);
            assert_close(
                &format!("softmax masked keys{keys} {strategy:?}"),
                &got,
                &want,
                1e-6,
                1e-5,
            );
            for row in got.chunks(keys).skip(heads * queries) {
                assert!(
                    row[4..].iter().all(|&p| p == 0.0),
                    "masked keys get no weight: {row:?}"
                );
            }
        }
    }
}

#[test]
fn large_and_infinite_logits_stay_finite() {
    for strategy in strategies(4) {
        let x = vec![1e4f32, -1e4, 0.0, 1e4 - 1.0, 3e4, -3e4, 2e4, 1e4];
        let want = softmax(&to_f64(&x), 4, 1.0, None);
        let y = download(
            &softmax_forward_with(&upload(&x, &[2, 4]), 1.0, None, None, None, strategy)
                .unwrap()
                .0,
        );
        assert_close("softmax logits 1e4", &y, &want, 1e-6, 1e-5);
        // A row masked entirely with -inf gives zeros, not NaN.
        let mask = vec![f32::NEG_INFINITY; 4];
        let y = download(
            &softmax_forward_with(
                &upload(&[1.0, 2.0, 3.0, 4.0], &[1, 4]),
                1.0,
                Some(RowMask {
                    mask: &upload(&mask, &[1, 4]),
                    rows_per_mask: 1,
                }),
                None,
                None,
                strategy,
            )
            .unwrap()
            .0,
        );
        assert_eq!(y, vec![0.0; 4], "{strategy:?}");
    }
}

#[test]
fn reference_backward_matches_finite_differences() {
    let mut r = rng(5);
    let (rows, cols, scale) = (3, 6, 0.7);
    let x = to_f64(&uniform(&mut r, rows * cols, -2.0, 2.0));
    let w = to_f64(&uniform(&mut r, rows * cols, -1.0, 1.0));
    let y = softmax(&x, cols, scale, None);
    let analytic = ref_backward(&y, &w, cols, scale);
    let numeric = finite_difference(&x, 1e-6, |x| dot(&w, &softmax(x, cols, scale, None)));
    assert_grad_close("softmax dx", &analytic, &numeric, 1e-7);
}

#[test]
fn gpu_backward_matches_reference() {
    for (i, &(rows, cols)) in SHAPES.iter().enumerate() {
        for strategy in strategies(cols) {
            let mut r = rng(100 + i as u64);
            let x = uniform(&mut r, rows * cols, -3.0, 3.0);
            let dy = uniform(&mut r, rows * cols, -1.0, 1.0);
            let y64 = softmax(&to_f64(&x), cols, 0.3, None);
            let want = ref_backward(&y64, &to_f64(&dy), cols, 0.3);
            let y =
                softmax_forward_with(&upload(&x, &[rows, cols]), 0.3, None, None, None, strategy)
                    .unwrap()
                    .0;
            let dx = softmax_backward_with(&y, &upload(&dy, &[rows, cols]), 0.3, None, strategy)
                .unwrap();
            assert_close(
                &format!("softmax backward rows{rows} cols{cols} {strategy:?}"),
                &download(&dx),
                &want,
                1e-6,
                1e-5,
            );
        }
    }
}

/// Dropout fused into the softmax matches the stand-alone dropout kernel (same mask), and
/// the fused backward equals the softmax backward of the dropout backward.
#[test]
fn fused_dropout_matches_the_separate_kernels() {
    use taskgate::ops::dropout::{dropout, keeps};
    use taskgate::ops::softmax::FusedDropout;
    for (rows, cols) in [(6, 12), (5, 33), (64, 64)] {
        for strategy in strategies(cols) {
            let mut r = rng(rows as u64 * 31 + cols as u64);
            let x = uniform(&mut r, rows * cols, -3.0, 3.0);
            let dyd = uniform(&mut r, rows * cols, -1.0, 1.0);
            let fused = FusedDropout {
                p: 0.25,
                seed: 1234,
            };
            let xt = upload(&x, &[rows, cols]);
            let (y, dropped) =
                softmax_forward_with(&xt, 0.5, None, None, Some(fused), strategy).unwrap();
            let separate = dropout(&y, 0.25, 1234).unwrap();
            let tag = format!("rows{rows} cols{cols} {strategy:?}");
            assert_eq!(
                download(&dropped.unwrap()),
                download(&separate),
                "dropped probabilities {tag}"
            );
            // Reference: dx = softmax_backward(y, dy * keep / (1 - p)).
            let y64 = softmax(&to_f64(&x), cols, 0.5, None);
            let g: Vec<f64> = dyd
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    if keeps(i as u32, 1234, 0.25) {
                        v as f64 / 0.75
                    } else {
                        0.0
                    }
                })
                .collect();
            let want = ref_backward(&y64, &g, cols, 0.5);
            let dx =
                softmax_backward_with(&y, &upload(&dyd, &[rows, cols]), 0.5, Some(fused), strategy)
                    .unwrap();
            assert_close(
                &format!("softmax backward with fused dropout {tag}"),
                &download(&dx),
                &want,
                1e-6,
                1e-5,
            );
        }
    }
}

/// Decoder self-attention: scores [batch, heads, queries, keys] with query i seeing keys
/// 0..=i + keys - queries, together with the padding mask; awkward sizes (1, primes, a
/// block of new queries after cached keys). The backward needs no mask (y is 0 there).
#[test]
fn causal_mask_hides_later_keys() {
    for (blocks, queries, keys) in [
        (1, 1, 1),
        (6, 5, 5),
        (3, 7, 7),
        (2, 8, 8),
        (4, 3, 8),
        (2, 1, 13),
    ] {
        for strategy in strategies(keys) {
            let rows = blocks * queries;
            let mut r = rng((queries * 100 + keys) as u64);
            let x = uniform(&mut r, rows * keys, -4.0, 4.0);
            let dy = uniform(&mut r, rows * keys, -1.0, 1.0);
            let mut mask = vec![0.0f32; blocks * keys];
            mask[blocks * keys - 1] = -1e30; // the last block's last key is padding
            let mask64 = to_f64(&mask);
            let want = softmax_causal(
                &to_f64(&x),
                keys,
                0.5,
                Some((&mask64, queries)),
                Some(queries),
            );
            let (y, _) = softmax_forward_with(
                &upload(&x, &[rows, keys]),
                0.5,
                Some(RowMask {
                    mask: &upload(&mask, &[blocks, keys]),
                    rows_per_mask: queries,
                }),
                Some(Causal { queries }),
                None,
                strategy,
            )
            .unwrap();
            let tag = format!("causal blocks{blocks} queries{queries} keys{keys} {strategy:?}");
            let got = download(&y);
            assert_close(&tag, &got, &want, 1e-6, 1e-5);
            for (row, values) in got.chunks(keys).enumerate() {
                let visible = row % queries + 1 + keys - queries;
                assert!(
                    values[visible..].iter().all(|&v| v == 0.0),
                    "{tag}: row {row} sees a later key"
                );
            }
            let dx = softmax_backward_with(&y, &upload(&dy, &[rows, keys]), 0.5, None, strategy)
                .unwrap();
            let want_dx = ref_backward(&want, &to_f64(&dy), keys, 0.5);
            assert_close(
                &format!("{tag} backward"),
                &download(&dx),
                &want_dx,
                1e-6,
                1e-5,
            );
        }
    }
    // A block of more queries than keys cannot be causal.
    let x = upload(&[0.0; 8], &[4, 2]);
    let err = softmax_forward_with(
        &x,
        1.0,
        None,
        Some(Causal { queries: 4 }),
        None,
        RowStrategy::Workgroup,
    );
    assert!(err.is_err());
}

#[test]
fn causal_reference_backward_matches_finite_differences() {
    let mut r = rng(77);
    let (rows, cols, queries, scale) = (6, 5, 3, 0.7);
    let x = to_f64(&uniform(&mut r, rows * cols, -2.0, 2.0));
    let w = to_f64(&uniform(&mut r, rows * cols, -1.0, 1.0));
    let f = |x: &[f64]| softmax_causal(x, cols, scale, None, Some(queries));
    let analytic = ref_backward(&f(&x), &w, cols, scale);
    let numeric = finite_difference(&x, 1e-6, |x| dot(&w, &f(x)));
    assert_grad_close("causal softmax dx", &analytic, &numeric, 1e-7);
}
