//! Fused losses: the f64 references against PyTorch's results (fixture made by
//! tests/fixtures/make_kernel_fixtures.py), against finite differences, and the GPU kernels
//! against the references. Tolerance GPU vs reference: 1e-6 absolute + 1e-5 relative.

use taskgate::ops::loss::{
    CrossEntropyOptions, GradScale, LossOutput, TaskWeight, bce_with_logits,
    bce_with_logits_weighted, cross_entropy, mse,
};
use taskgate::reference::finite_difference;
use taskgate::reference::loss::{
    bce_with_logits as ref_bce, bce_with_logits_weighted as ref_bce_weighted,
    cross_entropy as ref_ce, mse as ref_mse,
};

use crate::common::*;

#[test]
fn references_match_pytorch() {
    let fx = torch_fixture();
    for case in fx["cross_entropy"].as_array().unwrap() {
        let classes = case["classes"].as_u64().unwrap() as usize;
        let targets = targets_of(case);
        let weights = case["weights"].as_array().map(|_| floats(&case["weights"]));
        let (loss, grad) = ref_ce(
            &floats(&case["logits"]),
            &targets,
            classes,
            weights.as_deref(),
            -100,
            case["smoothing"].as_f64().unwrap(),
        );
        assert!(
            (loss - case["loss"].as_f64().unwrap()).abs() < 1e-12,
            "cross-entropy loss {loss} vs {}",
            case["loss"]
        );
        assert_grad_close(
            "cross-entropy grad vs torch",
            &grad,
            &floats(&case["grad"]),
            1e-12,
        );
    }
    for case in fx["masked"].as_array().unwrap() {
        let outputs = case["outputs"].as_u64().unwrap() as usize;
        let f = if case["kind"] == "bce" {
            ref_bce
        } else {
            ref_mse
        };
        let (loss, grad) = f(
            &floats(&case["logits"]),
            &floats(&case["targets"]),
            &floats(&case["mask"]),
            outputs,
        );
        assert!(
            (loss - case["loss"].as_f64().unwrap()).abs() < 1e-12,
            "{} loss {loss} vs {}",
            case["kind"],
            case["loss"]
        );
        assert_grad_close(
            "masked loss grad vs torch",
            &grad,
            &floats(&case["grad"]),
            1e-12,
        );
    }
}

fn targets_of(case: &serde_json::Value) -> Vec<i32> {
    case["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_i64().unwrap() as i32)
        .collect()
}

/// Asserts that the f64 `reference` (loss, d(logits)) matches PyTorch's within 1e-12 and the
/// kernel's `gpu` output within 1e-5 (absolute and relative).
fn assert_matches_torch(
    tag: &str,
    case: &serde_json::Value,
    reference: (f64, Vec<f64>),
    gpu: &LossOutput,
) {
    let (torch_loss, torch_grad) = (case["loss"].as_f64().unwrap(), floats(&case["grad"]));
    let (loss, grad) = reference;
    assert!(
        (loss - torch_loss).abs() < 1e-12,
        "{tag}: {loss} vs {torch_loss}"
    );
    assert_grad_close(&format!("{tag} reference grad"), &grad, &torch_grad, 1e-12);
    assert_close(
        &format!("{tag} loss"),
        &download(&gpu.loss),
        &[torch_loss],
        1e-5,
        1e-5,
    );
    assert_close(
        &format!("{tag} grad"),
        &download(&gpu.dlogits),
        &torch_grad,
        1e-5,
        1e-5,
    );
}

/// The class-weighted cross-entropy and the pos_weight BCE, reference and GPU kernel, against
/// PyTorch (`cross_entropy(weight=...)` with ignored rows; `binary_cross_entropy_with_logits(
/// pos_weight=...)` over the rows with labels): the reference to 1e-12, the kernel to 1e-5.
#[test]
fn weighted_losses_match_pytorch() {
    let fx = torch_fixture();
    for (i, case) in fx["class_weights"].as_array().unwrap().iter().enumerate() {
        let (rows, classes) = (
            case["rows"].as_u64().unwrap() as usize,
            case["classes"].as_u64().unwrap() as usize,
        );
        let (logits, targets) = (floats(&case["logits"]), targets_of(case));
        let weights = floats(&case["weights"]);
        let smoothing = case["smoothing"].as_f64().unwrap();
        let reference = ref_ce(&logits, &targets, classes, Some(&weights), -100, smoothing);
        let out = cross_entropy(
            &upload(&to_f32(&logits), &[rows, classes]),
            &targets,
            &CrossEntropyOptions {
                class_weights: Some(to_f32(&weights)),
                label_smoothing: smoothing as f32,
                ..Default::default()
            },
        )
        .unwrap();
        assert_matches_torch(&format!("class_weights case {i}"), case, reference, &out);
    }
    for (i, case) in fx["pos_weight"].as_array().unwrap().iter().enumerate() {
        let (rows, outputs) = (
            case["rows"].as_u64().unwrap() as usize,
            case["outputs"].as_u64().unwrap() as usize,
        );
        let (logits, targets, mask) = (
            floats(&case["logits"]),
            floats(&case["targets"]),
            floats(&case["mask"]),
        );
        let pos_weight = floats(&case["pos_weight"]);
        let reference = ref_bce_weighted(&logits, &targets, &mask, outputs, Some(&pos_weight));
        let out = bce_with_logits_weighted(
            &upload(&to_f32(&logits), &[rows, outputs]),
            &to_f32(&targets),
            &to_f32(&mask),
            Some(&to_f32(&pos_weight)),
            1.0,
        )
        .unwrap();
        assert_matches_torch(&format!("pos_weight case {i}"), case, reference, &out);
    }
}

#[test]
fn reference_gradients_match_finite_differences() {
    let mut r = rng(4);
    let (rows, classes) = (4, 5);
    let logits = to_f64(&uniform(&mut r, rows * classes, -3.0, 3.0));
    let targets = [2, -100, 0, 4];
    let weights = to_f64(&uniform(&mut r, classes, 0.5, 1.5));
    let (_, grad) = ref_ce(&logits, &targets, classes, Some(&weights), -100, 0.15);
    let fd = finite_difference(&logits, 1e-6, |x| {
        ref_ce(x, &targets, classes, Some(&weights), -100, 0.15).0
    });
    assert_grad_close("cross-entropy dlogits", &grad, &fd, 1e-7);
    let t = to_f64(&uniform(&mut r, rows * classes, 0.0, 1.0));
    let mask = [1.0, 0.0, 1.0, 1.0];
    let (_, grad) = ref_bce(&logits, &t, &mask, classes);
    let fd = finite_difference(&logits, 1e-6, |x| ref_bce(x, &t, &mask, classes).0);
    assert_grad_close("bce dlogits", &grad, &fd, 1e-7);
    let pos_weight = to_f64(&uniform(&mut r, classes, 0.2, 5.0));
    let weighted = |x: &[f64]| ref_bce_weighted(x, &t, &mask, classes, Some(&pos_weight));
    let fd = finite_difference(&logits, 1e-6, |x| weighted(x).0);
    assert_grad_close("bce pos_weight dlogits", &weighted(&logits).1, &fd, 1e-7);
    let (_, grad) = ref_mse(&logits, &t, &mask, classes);
    let fd = finite_difference(&logits, 1e-6, |x| ref_mse(x, &t, &mask, classes).0);
    assert_grad_close("mse dlogits", &grad, &fd, 1e-7);
}

/// (rows, classes): 1, primes, more classes than the 256-wide workgroup.
const CE_SHAPES: &[(usize, usize)] = &[(1, 1), (1, 2), (7, 3), (13, 300), (64, 9)];

#[test]
fn cross_entropy_kernel_matches_reference() {
    for (i, &(rows, classes)) in CE_SHAPES.iter().enumerate() {
        for (weighted, smoothing, grad_scale) in [(false, 0.0, 1.0), (true, 0.1, 0.5)] {
            let mut r = rng(i as u64 * 10 + weighted as u64);
            let logits = uniform(&mut r, rows * classes, -5.0, 5.0);
            let targets: Vec<i32> = (0..rows)
                .map(|row| {
                    if row % 3 == 1 {
                        -100
                    } else {
                        ((row * 7 + 1) % classes) as i32
                    }
                })
                .collect();
            let weights = weighted.then(|| uniform(&mut r, classes, 0.5, 2.0));
            let (want_loss, want_grad) = ref_ce(
                &to_f64(&logits),
                &targets,
                classes,
                weights.as_ref().map(|w| to_f64(w)).as_deref(),
                -100,
                smoothing,
            );
            let opts = CrossEntropyOptions {
                class_weights: weights.clone(),
                label_smoothing: smoothing as f32,
                grad_scale,
                ..Default::default()
            };
            let out = cross_entropy(&upload(&logits, &[rows, classes]), &targets, &opts).unwrap();
            let tag =
                format!("rows{rows} classes{classes} weighted{weighted} smoothing{smoothing}");
            assert_close(
                &format!("cross-entropy loss {tag}"),
                &download(&out.loss),
                &[want_loss],
                1e-6,
                1e-5,
            );
            let want_grad: Vec<f64> = want_grad.iter().map(|g| g * grad_scale as f64).collect();
            assert_close(
                &format!("cross-entropy dlogits {tag}"),
                &download(&out.dlogits),
                &want_grad,
                1e-6,
                1e-5,
            );
        }
    }
}

#[test]
fn cross_entropy_with_huge_logits_stays_finite() {
    let logits = vec![1e4f32, -1e4, 0.0, 3e4, 3e4 - 5.0, -3e4];
    let targets = [1, 2];
    let (want_loss, want_grad) = ref_ce(&to_f64(&logits), &targets, 3, None, -100, 0.1);
    let out = cross_entropy(
        &upload(&logits, &[2, 3]),
        &targets,
        &CrossEntropyOptions {
            label_smoothing: 0.1,
            ..Default::default()
        },
    )
    .unwrap();
    assert_close(
        "cross-entropy logits 1e4 loss",
        &download(&out.loss),
        &[want_loss],
        1e-6,
        1e-5,
    );
    assert_close(
        "cross-entropy logits 1e4 dlogits",
        &download(&out.dlogits),
        &want_grad,
        1e-6,
        1e-5,
    );
}

#[test]
fn a_batch_without_labels_contributes_nothing() {
    let logits = upload(&[1.0, 2.0, 3.0, 4.0], &[2, 2]);
    let out = cross_entropy(&logits, &[-100, -100], &CrossEntropyOptions::default()).unwrap();
    assert_eq!(download(&out.loss), vec![0.0]);
    assert_eq!(download(&out.dlogits), vec![0.0; 4]);
    let out = mse(&logits, &[0.0; 4], &[0.0, 0.0], 1.0).unwrap();
    assert_eq!(download(&out.loss), vec![0.0]);
    assert_eq!(download(&out.dlogits), vec![0.0; 4]);
}

#[test]
fn bad_targets_are_errors() {
    let logits = upload(&[0.0; 6], &[2, 3]);
    let err = cross_entropy(&logits, &[0, 3], &CrossEntropyOptions::default())
        .err()
        .unwrap();
    assert!(err.to_string().contains("target 3 in row 1"), "{err}");
    assert!(cross_entropy(&logits, &[0], &CrossEntropyOptions::default()).is_err());
    assert!(mse(&logits, &[f32::NAN; 6], &[1.0, 1.0], 1.0).is_err());
}

#[test]
fn bce_and_mse_kernels_match_reference() {
    for (i, &(rows, outputs)) in [(1usize, 1usize), (5, 4), (6, 1), (70, 3), (3, 300)]
        .iter()
        .enumerate()
    {
        let mut r = rng(700 + i as u64);
        let logits = uniform(&mut r, rows * outputs, -20.0, 20.0);
        let soft = uniform(&mut r, rows * outputs, 0.0, 1.0);
        let mask: Vec<f32> = (0..rows)
            .map(|row| if row % 4 == 2 { 0.0 } else { 1.0 })
            .collect();
        let lt = upload(&logits, &[rows, outputs]);
        let tag = format!("rows{rows} outputs{outputs}");
        let (wl, wg) = ref_bce(&to_f64(&logits), &to_f64(&soft), &to_f64(&mask), outputs);
        let out = bce_with_logits(&lt, &soft, &mask, 2.0).unwrap();
        assert_close(
            &format!("bce loss {tag}"),
            &download(&out.loss),
            &[wl],
            1e-6,
            1e-5,
        );
        let wg2: Vec<f64> = wg.iter().map(|g| 2.0 * g).collect();
        assert_close(
            &format!("bce dlogits {tag}"),
            &download(&out.dlogits),
            &wg2,
            1e-6,
            1e-5,
        );
        let pos_weight = uniform(&mut r, outputs, 0.1, 6.0);
        let (wl, wg) = ref_bce_weighted(
            &to_f64(&logits),
            &to_f64(&soft),
            &to_f64(&mask),
            outputs,
            Some(&to_f64(&pos_weight)),
        );
        let out = bce_with_logits_weighted(&lt, &soft, &mask, Some(&pos_weight), 1.0).unwrap();
        assert_close(
            &format!("bce pos_weight loss {tag}"),
            &download(&out.loss),
            &[wl],
            1e-6 * (1.0 + wl),
            1e-5,
        );
        assert_close(
            &format!("bce pos_weight dlogits {tag}"),
            &download(&out.dlogits),
            &wg,
            1e-6,
            1e-5,
        );
        let (wl, wg) = ref_mse(&to_f64(&logits), &to_f64(&soft), &to_f64(&mask), outputs);
        let out = mse(&lt, &soft, &mask, 1.0).unwrap();
        assert_close(
            &format!("mse loss {tag}"),
            &download(&out.loss),
            &[wl],
            1e-6 * (1.0 + wl),
            1e-5,
        );
        assert_close(
            &format!("mse dlogits {tag}"),
            &download(&out.dlogits),
            &wg,
            1e-6,
            1e-5,
        );
    }
}

/// A task weight read from a GPU tensor scales d(logits) exactly as a constant would, and
/// leaves the loss unweighted (the weighted total is `accumulate_weighted`'s job).
#[test]
fn a_task_weight_on_the_gpu_scales_dlogits_and_not_the_loss() {
    let weights = upload(&[0.3, -1.7, 2.5], &[3]);
    let weight = |index| {
        Some(TaskWeight {
            weights: weights.clone(),
            index,
        })
    };
    for (i, &(rows, classes)) in [(1usize, 1usize), (7, 5), (3, 300)].iter().enumerate() {
        let mut r = rng(900 + i as u64);
        let logits = uniform(&mut r, rows * classes, -4.0, 4.0);
        let lt = upload(&logits, &[rows, classes]);
        let tag = format!("rows{rows} classes{classes}");
        let targets: Vec<i32> = (0..rows).map(|row| (row % classes) as i32).collect();
        let (want_loss, want_grad) = ref_ce(&to_f64(&logits), &targets, classes, None, -100, 0.0);
        let opts = CrossEntropyOptions {
            grad_scale: 0.5,
            task_weight: weight(2),
            ..Default::default()
        };
        let out = cross_entropy(&lt, &targets, &opts).unwrap();
        assert_close(
            &format!("ce loss {tag}"),
            &download(&out.loss),
            &[want_loss],
            1e-6,
            1e-5,
        );
        let scaled: Vec<f64> = want_grad.iter().map(|g| 0.5 * 2.5 * g).collect();
        assert_close(
            &format!("ce dlogits {tag}"),
            &download(&out.dlogits),
            &scaled,
            1e-6,
            1e-5,
        );

        let soft = uniform(&mut r, rows * classes, 0.0, 1.0);
        let mask = vec![1.0; rows];
        let (wl, wg) = ref_mse(&to_f64(&logits), &to_f64(&soft), &to_f64(&mask), classes);
        let scale = GradScale {
            factor: 2.0,
            task_weight: weight(1),
        };
        let out = mse(&lt, &soft, &mask, scale).unwrap();
        assert_close(
            &format!("mse loss {tag}"),
            &download(&out.loss),
            &[wl],
            1e-5,
            1e-5,
        );
        let scaled: Vec<f64> = wg.iter().map(|g| 2.0 * -1.7 * g).collect();
        assert_close(
            &format!("mse dlogits {tag}"),
            &download(&out.dlogits),
            &scaled,
            1e-6,
            1e-5,
        );
    }
    let bad = CrossEntropyOptions {
        task_weight: weight(3),
        ..Default::default()
    };
    let err = match cross_entropy(&upload(&[0.0, 1.0], &[1, 2]), &[0], &bad) {
        Ok(_) => panic!("a task weight past the tensor is an error"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("task weight 3"), "{err}");
}
