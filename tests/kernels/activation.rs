//! GELU (erf form), tanh, sigmoid and their derivatives. Tolerance: 1e-6 absolute + 2e-6
//! relative over [-10, 10), plus extremes (0, +-20, +-100).

use taskgate::ops::activation::{gelu, gelu_backward, sigmoid, tanh, tanh_backward};
use taskgate::reference::activation::{
    gelu as ref_gelu, gelu_grad, sigmoid as ref_sigmoid, tanh_grad,
};
use taskgate::reference::finite_difference;

use crate::common::*;

const SIZES: &[usize] = &[1, 7, 64, 257, 70001, 70004];

fn inputs(seed: u64, n: usize) -> Vec<f32> {
    let mut x = uniform(&mut rng(seed), n, -10.0, 10.0);
    for (slot, v) in x.iter_mut().zip([0.0, 20.0, -20.0, 100.0, -100.0]) {
        *slot = v;
    }
    x
}

#[test]
fn forward_matches_reference() {
    for &n in SIZES {
        let x = inputs(n as u64, n);
        let t = upload(&x, &[n]);
        let map = |f: fn(f64) -> f64| x.iter().map(|&v| f(v as f64)).collect::<Vec<_>>();
        assert_close(
            &format!("gelu n{n}"),
            &download(&gelu(&t).unwrap()),
            &map(ref_gelu),
            1e-6,
            2e-6,
        );
        assert_close(
            &format!("tanh n{n}"),
            &download(&tanh(&t).unwrap()),
            &map(f64::tanh),
            1e-6,
            2e-6,
        );
        assert_close(
            &format!("sigmoid n{n}"),
            &download(&sigmoid(&t).unwrap()),
            &map(ref_sigmoid),
            1e-6,
            2e-6,
        );
    }
}

#[test]
fn reference_derivatives_match_finite_differences() {
    let x: Vec<f64> = (-40..=40).map(|i| i as f64 * 0.2 + 0.013).collect();
    let sum_of = |f: fn(f64) -> f64| move |v: &[f64]| v.iter().map(|&a| f(a)).sum::<f64>();
    let fd_gelu = finite_difference(&x, 1e-6, sum_of(ref_gelu));
    let fd_tanh = finite_difference(&x, 1e-6, sum_of(f64::tanh));
    assert_grad_close(
        "gelu'",
        &x.iter().map(|&v| gelu_grad(v)).collect::<Vec<_>>(),
        &fd_gelu,
        1e-7,
    );
    assert_grad_close(
        "tanh'",
        &x.iter().map(|&v| tanh_grad(v)).collect::<Vec<_>>(),
        &fd_tanh,
        1e-7,
    );
}

#[test]
fn gpu_backward_matches_reference() {
    for &n in SIZES {
        let x = inputs(1000 + n as u64, n);
        let dy = uniform(&mut rng(2000 + n as u64), n, -1.0, 1.0);
        let (xt, dyt) = (upload(&x, &[n]), upload(&dy, &[n]));
        let want = |f: fn(f64) -> f64| {
            x.iter()
                .zip(&dy)
                .map(|(&v, &g)| f(v as f64) * g as f64)
                .collect::<Vec<_>>()
        };
        assert_close(
            &format!("gelu backward n{n}"),
            &download(&gelu_backward(&xt, &dyt).unwrap()),
            &want(gelu_grad),
            1e-6,
            2e-6,
        );
        assert_close(
            &format!("tanh backward n{n}"),
            &download(&tanh_backward(&xt, &dyt).unwrap()),
            &want(tanh_grad),
            1e-6,
            2e-6,
        );
    }
}
