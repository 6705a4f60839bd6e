//! LayerNorm forward and backward. Tolerance: 2e-5 absolute + 1e-4 relative (inputs in
//! [-2, 2), gamma near 1).

use taskgate::DType;
use taskgate::Tensor;
use taskgate::ops::RowStrategy;
use taskgate::ops::layernorm::{
    LayerNormGrads, layernorm_backward_into, layernorm_backward_into_with, layernorm_forward,
    layernorm_forward_with,
};
use taskgate::reference::layernorm::{layernorm, layernorm_backward as ref_backward};
use taskgate::reference::{dot, finite_difference};

use crate::common::*;

/// (rows, d): 1, primes, d wider than the 256-wide workgroup, rows past the 64-row chunk.
const SHAPES: &[(usize, usize)] = &[
    (1, 1),
    (1, 2),
    (3, 7),
    (17, 384),
    (130, 65),
    (5, 300),
    (129, 1),
];

struct Case {
    x: Vec<f32>,
    gamma: Vec<f32>,
    beta: Vec<f32>,
    dy: Vec<f32>,
}

fn case(seed: u64, rows: usize, d: usize) -> Case {
    let mut r = rng(seed);
    Case {
        x: uniform(&mut r, rows * d, -2.0, 2.0),
        gamma: uniform(&mut r, d, 0.5, 1.5),
        beta: uniform(&mut r, d, -0.5, 0.5),
        dy: uniform(&mut r, rows * d, -1.0, 1.0),
    }
}

/// Both row strategies where the width allows the per-invocation one.
fn strategies(d: usize) -> Vec<RowStrategy> {
    let mut s = vec![RowStrategy::Workgroup];
    if d.is_multiple_of(4) {
        s.push(RowStrategy::PerInvocation);
    }
    s
}

#[test]
fn forward_matches_reference() {
    for (i, &(rows, d)) in SHAPES.iter().enumerate() {
        for (eps, strategy) in [1e-5f32, 1e-12]
            .into_iter()
            .flat_map(|e| strategies(d).into_iter().map(move |s| (e, s)))
        {
            let c = case(i as u64, rows, d);
            let (want, mean, rstd) = layernorm(
                &to_f64(&c.x),
                &to_f64(&c.gamma),
                &to_f64(&c.beta),
                eps as f64,
            );
            let out = layernorm_forward_with(
                &upload(&c.x, &[rows, d]),
                &upload(&c.gamma, &[d]),
                &upload(&c.beta, &[d]),
                eps,
                strategy,
            )
            .unwrap();
            let tag = format!("rows{rows} d{d} eps{eps:e} {strategy:?}");
            assert_close(
                &format!("layernorm y {tag}"),
                &download(&out.y),
                &want,
                2e-5,
                1e-4,
            );
            assert_close(
                &format!("layernorm mean {tag}"),
                &download(&out.mean),
                &mean,
                2e-6,
                1e-5,
            );
            if d > 1 {
                // With d = 1 the variance is 0 and rstd = 1/sqrt(eps) is huge; y is still checked.
                assert_close(
                    &format!("layernorm rstd {tag}"),
                    &download(&out.rstd),
                    &rstd,
                    2e-5,
                    1e-4,
                );
            }
        }
    }
}

#[test]
fn large_offsets_do_not_lose_the_variance() {
    // The spread is 0.19 around 1e3: in f32, E[x^2] - E[x]^2 would be off by about the ulp
    // of 1e6 (0.06) against a variance of 0.03; the two-pass variance keeps y to 1e-3.
    let d = 64;
    let x: Vec<f32> = (0..d).map(|j| 1e3 + (j as f32) * 1e-2).collect();
    let ones = vec![1.0f32; d];
    let zeros = vec![0.0f32; d];
    let (want, _, _) = layernorm(&to_f64(&x), &to_f64(&ones), &to_f64(&zeros), 1e-12);
    let out = layernorm_forward(
        &upload(&x, &[1, d]),
        &upload(&ones, &[d]),
        &upload(&zeros, &[d]),
        1e-12,
    )
    .unwrap();
    assert_close("layernorm offset 1e3", &download(&out.y), &want, 1e-3, 1e-3);
}

#[test]
fn reference_backward_matches_finite_differences() {
    let (rows, d, eps) = (3, 5, 1e-5);
    let c = case(9, rows, d);
    let (x, g, b, w) = (
        to_f64(&c.x),
        to_f64(&c.gamma),
        to_f64(&c.beta),
        to_f64(&c.dy),
    );
    let (dx, dg, db) = ref_backward(&x, &g, &w, eps);
    let fx = finite_difference(&x, 1e-6, |v| dot(&w, &layernorm(v, &g, &b, eps).0));
    let fg = finite_difference(&g, 1e-6, |v| dot(&w, &layernorm(&x, v, &b, eps).0));
    let fb = finite_difference(&b, 1e-6, |v| dot(&w, &layernorm(&x, &g, v, eps).0));
    assert_grad_close("layernorm dx", &dx, &fx, 1e-6);
    assert_grad_close("layernorm dgamma", &dg, &fg, 1e-6);
    assert_grad_close("layernorm dbeta", &db, &fb, 1e-6);
}

#[test]
fn gpu_backward_matches_reference() {
    for (i, &(rows, d)) in SHAPES.iter().enumerate() {
        for strategy in strategies(d) {
            let c = case(50 + i as u64, rows, d);
            let eps = 1e-5f32;
            let (dx, dg, db) =
                ref_backward(&to_f64(&c.x), &to_f64(&c.gamma), &to_f64(&c.dy), eps as f64);
            let x = upload(&c.x, &[rows, d]);
            let gamma = upload(&c.gamma, &[d]);
            let saved =
                layernorm_forward_with(&x, &gamma, &upload(&c.beta, &[d]), eps, strategy).unwrap();
            let (dgamma_t, dbeta_t) = (
                Tensor::zeros(gpu(), &[d], DType::F32).unwrap(),
                Tensor::zeros(gpu(), &[d], DType::F32).unwrap(),
            );
            let dx_t = layernorm_backward_into_with(
                &x,
                &gamma,
                &upload(&c.dy, &[rows, d]),
                &saved,
                &dgamma_t,
                &dbeta_t,
                false,
                strategy,
            )
            .unwrap();
            let grads = LayerNormGrads {
                dx: dx_t,
                dgamma: dgamma_t,
                dbeta: dbeta_t,
            };
            let tag = format!("rows{rows} d{d} {strategy:?}");
            // With d = 1, rstd = 1/sqrt(eps) amplifies f32 rounding of x - mean; dx is 0 exactly
            // in exact arithmetic and tiny here.
            let dx_tol = if d == 1 { 1e-2 } else { 5e-5 };
            assert_close(
                &format!("layernorm dx {tag}"),
                &download(&grads.dx),
                &dx,
                dx_tol,
                1e-4,
            );
            assert_close(
                &format!("layernorm dgamma {tag}"),
                &download(&grads.dgamma),
                &dg,
                5e-5 * (1.0 + rows as f64).sqrt(),
                1e-4,
            );
            assert_close(
                &format!("layernorm dbeta {tag}"),
                &download(&grads.dbeta),
                &db,
                1e-5 * (1.0 + rows as f64).sqrt(),
                1e-5,
            );
        }
    }
}

#[test]
fn parameter_gradients_accumulate() {
    let (rows, d) = (70, 9);
    let c = case(77, rows, d);
    let (_, dg, db) = ref_backward(&to_f64(&c.x), &to_f64(&c.gamma), &to_f64(&c.dy), 1e-5);
    let x = upload(&c.x, &[rows, d]);
    let gamma = upload(&c.gamma, &[d]);
    let saved = layernorm_forward(&x, &gamma, &upload(&c.beta, &[d]), 1e-5).unwrap();
    let dgamma = upload(&vec![1.0; d], &[d]);
    let dbeta = Tensor::zeros(gpu(), &[d], DType::F32).unwrap();
    layernorm_backward_into(
        &x,
        &gamma,
        &upload(&c.dy, &[rows, d]),
        &saved,
        &dgamma,
        &dbeta,
        true,
    )
    .unwrap();
    let want: Vec<f64> = dg.iter().map(|g| g + 1.0).collect();
    assert_close(
        "layernorm dgamma accumulated",
        &download(&dgamma),
        &want,
        5e-4,
        1e-4,
    );
    assert_close(
        "layernorm dbeta accumulated",
        &download(&dbeta),
        &db,
        1e-4,
        1e-4,
    );
}

/// LayerNorm(x + residual) in one kernel equals LayerNorm of the sum, and returns the sum.
#[test]
fn residual_is_fused_into_the_forward() {
    use taskgate::ops::layernorm::layernorm_forward_residual_with;
    for (i, &(rows, d)) in SHAPES.iter().enumerate() {
        for strategy in strategies(d) {
            let c = case(900 + i as u64, rows, d);
            let res = uniform(&mut rng(950 + i as u64), rows * d, -2.0, 2.0);
            let sum: Vec<f64> =
                c.x.iter()
                    .zip(&res)
                    .map(|(a, b)| (*a + *b) as f64)
                    .collect();
            let (want, _, _) = layernorm(&sum, &to_f64(&c.gamma), &to_f64(&c.beta), 1e-5);
            let (got_sum, out) = layernorm_forward_residual_with(
                &upload(&c.x, &[rows, d]),
                &upload(&res, &[rows, d]),
                &upload(&c.gamma, &[d]),
                &upload(&c.beta, &[d]),
                1e-5,
                strategy,
            )
            .unwrap();
            let tag = format!("rows{rows} d{d} {strategy:?}");
            assert_close(
                &format!("layernorm residual sum {tag}"),
                &download(&got_sum),
                &sum,
                1e-6,
                1e-6,
            );
            let tol = if d == 1 { 1e-2 } else { 2e-5 };
            assert_close(
                &format!("layernorm residual y {tag}"),
                &download(&out.y),
                &want,
                tol,
                1e-4,
            );
        }
    }
}
