//! Every method against `tests/fixtures/weighting.json`, written by
//! `tests/reference/weighting.py` (LibMTL's formulas on whole gradient vectors): taskgate
//! sees only the Gram matrix, so matching the combined gradient checks both the formula and
//! its rewriting in inner products.

use serde_json::Value;

use super::methods::{self, SmallAdam};
use super::solvers::Matrix;
use super::*;

const FIXTURE: &str = include_str!("../../../tests/fixtures/weighting.json");
const TOL: f64 = 1e-5;

fn vector(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect()
}

fn matrix(v: &Value) -> Vec<Vec<f64>> {
    v.as_array().expect("rows").iter().map(vector).collect()
}

fn gram(grads: &[Vec<f64>]) -> Matrix {
    grads
        .iter()
        .map(|a| {
            grads
                .iter()
                .map(|b| a.iter().zip(b).map(|(x, y)| x * y).sum())
                .collect()
        })
        .collect()
}

fn combine(grads: &[Vec<f64>], a: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; grads[0].len()];
    for (g, &c) in grads.iter().zip(a) {
        out.iter_mut().zip(g).for_each(|(o, x)| *o += c * x);
    }
    out
}

#[track_caller]
fn assert_close(ours: &[f64], reference: &[f64], what: &str) {
    assert_eq!(ours.len(), reference.len(), "{what}: lengths");
    let scale = reference.iter().fold(1.0f64, |m, x| m.max(x.abs()));
    for (a, b) in ours.iter().zip(reference) {
        assert!(
            (a - b).abs() <= TOL * scale,
            "{what}: {ours:?} vs reference {reference:?}"
        );
    }
}

fn cases() -> Vec<Value> {
    let fixture: Value = serde_json::from_str(FIXTURE).expect("the fixture is JSON");
    fixture["cases"].as_array().expect("cases").clone()
}

#[test]
fn loss_only_methods_match_the_reference() {
    for (n, case) in cases().iter().enumerate() {
        let losses = vector(&case["losses"]);
        let r = &case["rlw"];
        assert_close(
            &methods::rlw(&vector(&r["normals"])),
            &vector(&r["weights"]),
            &format!("case {n} rlw"),
        );
        let d = &case["dwa"];
        assert_close(
            &methods::dwa(
                &vector(&d["last"]),
                &vector(&d["before_last"]),
                d["temperature"].as_f64().unwrap(),
            ),
            &vector(&d["weights"]),
            &format!("case {n} dwa"),
        );
        let u = &case["uncertainty"];
        let mut s = vector(&u["log_var"]);
        assert_close(
            &methods::uncertainty_weights(&s),
            &vector(&u["weights"]),
            &format!("case {n} uncertainty weights"),
        );
        let lr = u["lr"].as_f64().unwrap();
        let mut adam = SmallAdam::new(s.len());
        let g = methods::uncertainty_gradient(&s, &losses);
        adam.step(&mut s, &g, lr, 0.0);
        let scale = u["second_losses_scale"].as_f64().unwrap();
        let second: Vec<f64> = losses.iter().map(|l| l * scale).collect();
        let g = methods::uncertainty_gradient(&s, &second);
        adam.step(&mut s, &g, lr, 0.0);
        assert_close(
            &s,
            &vector(&u["after_two_steps"]),
            &format!("case {n} uncertainty log-variances after two Adam steps"),
        );
    }
}

#[test]
fn famo_matches_the_reference() {
    for (n, case) in cases().iter().enumerate() {
        let losses = vector(&case["losses"]);
        let grads = matrix(&case["grads"]);
        let f = &case["famo"];
        let mut logits = vector(&f["logits"]);
        let min = vec![0.0; losses.len()];
        let grad = methods::famo_gradient(&logits, &vector(&f["previous"]), &losses, &min);
        SmallAdam::new(logits.len()).step(
            &mut logits,
            &grad,
            f["lr"].as_f64().unwrap(),
            f["weight_decay"].as_f64().unwrap(),
        );
        assert_close(
            &logits,
            &vector(&f["new_logits"]),
            &format!("case {n} famo logits"),
        );
        let w = methods::famo_weights(&logits, &losses, &min);
        assert_close(
            &w,
            &vector(&f["weights"]),
            &format!("case {n} famo weights"),
        );
        assert_close(
            &combine(&grads, &w),
            &vector(&f["gradient"]),
            &format!("case {n} famo gradient"),
        );
    }
}

#[test]
fn gradient_methods_match_the_reference() {
    for (n, case) in cases().iter().enumerate() {
        let losses = vector(&case["losses"]);
        let grads = matrix(&case["grads"]);
        let g = gram(&grads);

        for gn in case["gradnorm"].as_array().unwrap() {
            let alpha = gn["alpha"].as_f64().unwrap();
            let (w, ds) = methods::gradnorm(
                &vector(&gn["scale_logits"]),
                &g,
                &losses,
                &vector(&gn["initial"]),
                alpha,
            );
            let what = format!("case {n} gradnorm alpha {alpha}");
            assert_close(&w, &vector(&gn["weights"]), &format!("{what} weights"));
            assert_close(
                &ds,
                &vector(&gn["scale_gradient"]),
                &format!("{what} weight gradient"),
            );
            assert_close(
                &combine(&grads, &w),
                &vector(&gn["gradient"]),
                &format!("{what} gradient"),
            );
        }

        let pc = &case["pcgrad"];
        let orders: Vec<Vec<usize>> = pc["orders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| vector(o).iter().map(|&x| x as usize).collect())
            .collect();
        let a = methods::pcgrad(&g, &orders);
        assert_close(
            &a,
            &vector(&pc["weights"]),
            &format!("case {n} pcgrad weights"),
        );
        assert_close(
            &combine(&grads, &a),
            &vector(&pc["gradient"]),
            &format!("case {n} pcgrad gradient"),
        );

        for ca in case["cagrad"].as_array().unwrap() {
            let c = ca["c"].as_f64().unwrap();
            let rescale = ca["rescale"].as_u64().unwrap() as u8;
            let (a, inner) = methods::cagrad(&g, c, rescale);
            assert_close(
                &combine(&grads, &a),
                &vector(&ca["gradient"]),
                &format!("case {n} cagrad c {c} rescale {rescale}"),
            );
            if c > 0.0 {
                assert_close(&inner, &vector(&ca["inner"]), &format!("case {n} cagrad w"));
            }
        }

        let mg = &case["mgda"];
        let w = methods::mgda(&g);
        assert_close(
            &w,
            &vector(&mg["weights"]),
            &format!("case {n} mgda weights"),
        );
        assert_close(
            &combine(&grads, &w),
            &vector(&mg["gradient"]),
            &format!("case {n} mgda gradient"),
        );

        let im = &case["imtl"];
        let a = methods::imtl(&g);
        assert_close(
            &a,
            &vector(&im["weights"]),
            &format!("case {n} imtl weights"),
        );
        assert_close(
            &combine(&grads, &a),
            &vector(&im["gradient"]),
            &format!("case {n} imtl gradient"),
        );
    }
}

fn config(method: Weighting) -> TrainConfig {
    TrainConfig {
        weighting: method,
        mixing: crate::config::Mixing::AllTasks,
        ..Default::default()
    }
}

#[test]
fn random_draws_depend_on_the_step_and_seed_only() {
    assert_eq!(normals(3, 10, 4), normals(3, 10, 4));
    assert_ne!(normals(3, 10, 4), normals(3, 11, 4));
    assert_ne!(normals(3, 10, 4), normals(4, 10, 4));
    let orders = task_orders(1, 5, 4);
    for order in &orders {
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(sorted, vec![0, 1, 2, 3]);
    }
    // Over many steps the draws look standard normal.
    let draws: Vec<f64> = (0..4000).flat_map(|s| normals(7, s, 2)).collect();
    let mean = draws.iter().sum::<f64>() / draws.len() as f64;
    let var = draws.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / draws.len() as f64;
    assert!(
        mean.abs() < 0.05 && (var - 1.0).abs() < 0.08,
        "{mean} {var}"
    );
}

#[test]
fn plans_follow_the_method() {
    let plan = |m| Weighter::new(&config(m), 2, 10).plan(1);
    assert_eq!(plan(Weighting::Static), StepPlan::Fixed);
    assert_eq!(plan(Weighting::Equal), StepPlan::Weights(vec![1.0, 1.0]));
    assert_eq!(
        plan(Weighting::Uncertainty),
        StepPlan::Weights(vec![0.5 * 0.5f64.exp(); 2])
    );
    assert_eq!(plan(Weighting::Famo), StepPlan::WeightsFromLosses);
    for m in [
        Weighting::Gradnorm,
        Weighting::Pcgrad,
        Weighting::Cagrad,
        Weighting::Mgda,
        Weighting::Imtl,
    ] {
        assert_eq!(plan(m), StepPlan::TaskGradients, "{m:?}");
    }
}

#[test]
fn dwa_averages_each_period_and_weighs_by_the_last_two() {
    let mut c = config(Weighting::Dwa);
    c.dwa = Some(crate::config::weighting::DwaOptions {
        temperature: 2.0,
        period: 2,
    });
    let mut w = Weighter::new(&c, 2, 99);
    for losses in [[1.0, 2.0], [3.0, 2.0], [1.0, 1.0]] {
        assert_eq!(w.plan(1), StepPlan::Weights(vec![1.0, 1.0]));
        w.observe(&losses, 0.1);
    }
    w.observe(&[1.0, 3.0], 0.1);
    // Periods averaged (2, 2) then (1, 2): ratios (0.5, 1).
    assert_eq!(
        w.plan(5),
        StepPlan::Weights(methods::dwa(&[1.0, 2.0], &[2.0, 2.0], 2.0))
    );
}

#[test]
fn state_survives_json_bit_for_bit_and_refuses_another_method() {
    let mut w = Weighter::new(&config(Weighting::Famo), 3, 5);
    let g = vec![
        vec![1.0, 0.1, 0.0],
        vec![0.1, 1.0, 0.3],
        vec![0.0, 0.3, 1.0],
    ];
    for step in 1..4 {
        let losses = [0.7 / step as f64, 1.3, 0.2 * step as f64];
        w.combine(step, &losses, Some(&g), 1e-3).unwrap();
    }
    let json = serde_json::to_string(&w.state).unwrap();
    let back: WeightingState = serde_json::from_str(&json).unwrap();
    assert_eq!(back, w.state);
    let mut fresh = Weighter::new(&config(Weighting::Famo), 3, 5);
    fresh.restore(back.clone()).unwrap();
    let a = w.combine(4, &[0.3, 0.4, 0.5], Some(&g), 1e-3).unwrap();
    let b = fresh.combine(4, &[0.3, 0.4, 0.5], Some(&g), 1e-3).unwrap();
    assert_eq!(a, b);
    let mut other = Weighter::new(&config(Weighting::Uncertainty), 3, 5);
    assert!(other.restore(back).is_err());
    let mut fewer = Weighter::new(&config(Weighting::Famo), 2, 5);
    assert!(fewer.restore(w.state.clone()).is_err());
}
