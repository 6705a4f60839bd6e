//! The task gate y = sigmoid(a) * h, scalar (per row) and vector (per feature) modes, and
//! its backward. Tolerance: 1e-6 absolute + 1e-5 relative (dh), 1e-5 * sqrt(d) (scalar da).

use taskgate::ops::gate::{GateShape, gate_backward, gate_backward_input_into, gate_forward};
use taskgate::reference::gate::{gate, gate_backward as ref_backward};
use taskgate::reference::{dot, finite_difference};

use crate::common::*;

const SHAPES: &[(usize, usize)] = &[(1, 1), (7, 5), (33, 384), (3, 257)];

fn modes() -> [(GateShape, bool); 2] {
    [(GateShape::Scalar, false), (GateShape::Vector, true)]
}

#[test]
fn forward_matches_reference() {
    for (i, &(rows, d)) in SHAPES.iter().enumerate() {
        for (shape, vector) in modes() {
            let mut r = rng(i as u64);
            let a = uniform(&mut r, if vector { rows * d } else { rows }, -6.0, 6.0);
            let h = uniform(&mut r, rows * d, -2.0, 2.0);
            let want = gate(&to_f64(&a), &to_f64(&h), d, vector);
            let y = gate_forward(&upload(&a, &[a.len()]), &upload(&h, &[rows, d]), shape).unwrap();
            assert_close(
                &format!("gate {shape:?} rows{rows} d{d}"),
                &download(&y),
                &want,
                1e-6,
                1e-5,
            );
        }
    }
}

#[test]
fn reference_backward_matches_finite_differences() {
    let (rows, d) = (3, 4);
    for (_, vector) in modes() {
        let mut r = rng(8);
        let a = to_f64(&uniform(
            &mut r,
            if vector { rows * d } else { rows },
            -3.0,
            3.0,
        ));
        let h = to_f64(&uniform(&mut r, rows * d, -2.0, 2.0));
        let w = to_f64(&uniform(&mut r, rows * d, -1.0, 1.0));
        let (dh, da) = ref_backward(&a, &h, &w, d, vector);
        let fh = finite_difference(&h, 1e-6, |v| dot(&w, &gate(&a, v, d, vector)));
        let fa = finite_difference(&a, 1e-6, |v| dot(&w, &gate(v, &h, d, vector)));
        assert_grad_close("gate dh", &dh, &fh, 1e-7);
        assert_grad_close("gate da", &da, &fa, 1e-7);
    }
}

#[test]
fn gpu_backward_matches_reference() {
    for (i, &(rows, d)) in SHAPES.iter().enumerate() {
        for (shape, vector) in modes() {
            let mut r = rng(300 + i as u64);
            let a = uniform(&mut r, if vector { rows * d } else { rows }, -6.0, 6.0);
            let h = uniform(&mut r, rows * d, -2.0, 2.0);
            let dy = uniform(&mut r, rows * d, -1.0, 1.0);
            let (wh, wa) = ref_backward(&to_f64(&a), &to_f64(&h), &to_f64(&dy), d, vector);
            let (dh, da) = gate_backward(
                &upload(&a, &[a.len()]),
                &upload(&h, &[rows, d]),
                &upload(&dy, &[rows, d]),
                shape,
            )
            .unwrap();
            let tag = format!("{shape:?} rows{rows} d{d}");
            assert_close(&format!("gate dh {tag}"), &download(&dh), &wh, 1e-6, 1e-5);
            assert_close(
                &format!("gate da {tag}"),
                &download(&da),
                &wa,
                1e-5 * (d as f64).sqrt(),
                1e-5,
            );
        }
    }
}

/// The encoder output collects dh from every task: the second task's dh adds to the first.
#[test]
fn input_gradient_accumulates_across_tasks() {
    let (rows, d) = (5, 6);
    let mut r = rng(1);
    let a1 = uniform(&mut r, rows, -2.0, 2.0);
    let a2 = uniform(&mut r, rows * d, -2.0, 2.0);
    let h = to_f64(&uniform(&mut r, rows * d, -1.0, 1.0));
    let dy = uniform(&mut r, rows * d, -1.0, 1.0);
    let (w1, _) = ref_backward(&to_f64(&a1), &h, &to_f64(&dy), d, false);
    let (w2, _) = ref_backward(&to_f64(&a2), &h, &to_f64(&dy), d, true);
    let dh = upload(&vec![0.0; rows * d], &[rows, d]);
    let dyt = upload(&dy, &[rows, d]);
    gate_backward_input_into(&upload(&a1, &[rows]), &dyt, GateShape::Scalar, &dh, false).unwrap();
    gate_backward_input_into(&upload(&a2, &[rows, d]), &dyt, GateShape::Vector, &dh, true).unwrap();
    let want: Vec<f64> = w1.iter().zip(&w2).map(|(a, b)| a + b).collect();
    assert_close("gate dh two tasks", &download(&dh), &want, 1e-6, 1e-5);
}

#[test]
fn wrong_logit_count_is_an_error() {
    let h = upload(&[0.0; 6], &[2, 3]);
    let err = gate_forward(&upload(&[0.0; 3], &[3]), &h, GateShape::Scalar).unwrap_err();
    assert!(err.to_string().contains("must hold 2 values"), "{err}");
}
