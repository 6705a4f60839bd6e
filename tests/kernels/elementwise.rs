//! Elementwise add/scale/accumulate/fill, and the 2-D folding of large 1-D dispatches.
//! Tolerance: 1e-6 absolute + 1e-6 relative.

use taskgate::ops::elementwise::{accumulate, accumulate_weighted, add, axpby, fill, scale};
use taskgate::{DType, Tensor};

use crate::common::*;

const SIZES: &[usize] = &[1, 4, 7, 256, 257, 100_003, 100_004];

#[test]
fn elementwise_ops_match_reference() {
    for &n in SIZES {
        let mut r = rng(n as u64);
        let a = uniform(&mut r, n, -3.0, 3.0);
        let b = uniform(&mut r, n, -3.0, 3.0);
        let (at, bt) = (upload(&a, &[n]), upload(&b, &[n]));
        let want: Vec<f64> = a
            .iter()
            .zip(&b)
            .map(|(x, y)| *x as f64 + *y as f64)
            .collect();
        assert_close(
            &format!("add n{n}"),
            &download(&add(&at, &bt).unwrap()),
            &want,
            1e-6,
            1e-6,
        );
        let want: Vec<f64> = a
            .iter()
            .zip(&b)
            .map(|(x, y)| 0.5 * *x as f64 - 2.0 * *y as f64)
            .collect();
        assert_close(
            &format!("axpby n{n}"),
            &download(&axpby(0.5, &at, -2.0, &bt).unwrap()),
            &want,
            1e-6,
            1e-6,
        );
        let want: Vec<f64> = a.iter().map(|x| -1.5 * *x as f64).collect();
        assert_close(
            &format!("scale n{n}"),
            &download(&scale(&at, -1.5).unwrap()),
            &want,
            1e-6,
            1e-6,
        );
        let acc = upload(&a, &[n]);
        accumulate(&acc, &bt, 0.25).unwrap();
        let want: Vec<f64> = a
            .iter()
            .zip(&b)
            .map(|(x, y)| *x as f64 + 0.25 * *y as f64)
            .collect();
        assert_close(
            &format!("accumulate n{n}"),
            &download(&acc),
            &want,
            1e-6,
            1e-6,
        );
    }
}

/// More than 65535 workgroups of 256: the dispatch folds into two dimensions and every
/// element is still written once.
#[test]
fn large_fill_uses_a_two_dimensional_grid() {
    let n = 65535 * 256 + 301; // not a multiple of 4: the scalar kernel, folded into 2-D
    let t = Tensor::empty(gpu(), &[n], DType::F32).unwrap();
    fill(&t, 2.5).unwrap();
    let got = download(&t);
    assert_eq!(got.len(), n);
    assert!(got.iter().all(|&v| v == 2.5), "every element written");
}

#[test]
fn mismatched_or_aliased_operands_are_errors() {
    let a = upload(&[1.0, 2.0], &[2]);
    let b = upload(&[1.0, 2.0, 3.0], &[3]);
    assert!(add(&a, &b).is_err());
    let err = accumulate(&a, &a, 1.0).unwrap_err();
    assert!(err.to_string().contains("also bound"), "{err}");
}

/// `out += (alpha * weights[index]) * x`, the weight read on the GPU (the weighted total of
/// the task losses).
#[test]
fn accumulate_weighted_reads_the_weight_on_the_gpu() {
    let weights = upload(&[0.3, -1.7, 2.5], &[3]);
    for &n in SIZES {
        let mut r = rng(50 + n as u64);
        let a = uniform(&mut r, n, -3.0, 3.0);
        let b = uniform(&mut r, n, -3.0, 3.0);
        let out = upload(&a, &[n]);
        accumulate_weighted(&out, &upload(&b, &[n]), 0.5, &weights, 1).unwrap();
        let want: Vec<f64> = a
            .iter()
            .zip(&b)
            .map(|(x, y)| *x as f64 + 0.5 * -1.7 * *y as f64)
            .collect();
        assert_close(
            &format!("accumulate_weighted n{n}"),
            &download(&out),
            &want,
            1e-6,
            1e-6,
        );
    }
    let out = upload(&[1.0], &[1]);
    assert!(accumulate_weighted(&out, &upload(&[1.0], &[1]), 1.0, &weights, 3).is_err());
}
