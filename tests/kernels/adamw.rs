//! AdamW with gradient-norm clipping: the f64 reference against torch.optim.AdamW after
//! clip_grad_norm_ (fixture), and the GPU update against the reference over several steps.
//! Tolerance: 1e-6 absolute + 1e-5 relative on parameters.

use taskgate::ops::adamw::{AdamW, adamw_step, clip_coefficient, grad_norm_clip};
use taskgate::ops::reduce::sum_squares;
use taskgate::reference::optim::{adamw_step as ref_step, clip_coefficient as ref_clip};
use taskgate::{DType, Tensor};

use crate::common::*;

#[test]
fn reference_matches_pytorch() {
    let fx = torch_fixture();
    for case in fx["adamw"].as_array().unwrap() {
        let n = case["n"].as_u64().unwrap() as usize;
        let (lr, wd, max_norm) = (
            case["lr"].as_f64().unwrap(),
            case["weight_decay"].as_f64().unwrap(),
            case["max_norm"].as_f64().unwrap(),
        );
        let mut p = floats(&case["start"]);
        let (mut m, mut v) = (vec![0.0; n], vec![0.0; n]);
        for (step, (g, after)) in case["grads"]
            .as_array()
            .unwrap()
            .iter()
            .zip(case["after"].as_array().unwrap())
            .enumerate()
        {
            let g = floats(g);
            let (norm, coef) = ref_clip(&g, max_norm);
            assert!((norm - case["norms"][step].as_f64().unwrap()).abs() < 1e-12);
            ref_step(
                &mut p,
                &g,
                &mut m,
                &mut v,
                lr,
                (0.9, 0.999),
                1e-8,
                wd,
                step as u64 + 1,
                coef,
            );
            assert_grad_close("adamw params vs torch", &p, &floats(after), 1e-12);
        }
    }
}

#[test]
fn gpu_steps_match_reference() {
    for &n in &[1usize, 1000, 70001] {
        for max_norm in [0.0f32, 1.0] {
            let mut r = rng(n as u64);
            let p0 = uniform(&mut r, n, -1.0, 1.0);
            let hp = AdamW {
                lr: 1e-2,
                weight_decay: 0.05,
                ..Default::default()
            };
            let (param, m, v) = (
                upload(&p0, &[n]),
                Tensor::zeros(gpu(), &[n], DType::F32).unwrap(),
                Tensor::zeros(gpu(), &[n], DType::F32).unwrap(),
            );
            let mut want = to_f64(&p0);
            let (mut wm, mut wv) = (vec![0.0; n], vec![0.0; n]);
            for step in 1..=3u64 {
                let g = uniform(&mut r, n, -2.0, 2.0);
                let grad = upload(&g, &[n]);
                let clip = grad_norm_clip(&grad, max_norm).unwrap();
                adamw_step(&param, &grad, &m, &v, &clip, &hp, step, 0..n, 0).unwrap();
                let (norm, coef) = ref_clip(&to_f64(&g), max_norm as f64);
                let got_clip = download(&clip);
                assert_close(
                    &format!("clip n{n} max_norm{max_norm}"),
                    &got_clip[..2],
                    &[norm, coef],
                    1e-5 * (1.0 + norm),
                    1e-5,
                );
                ref_step(
                    &mut want,
                    &to_f64(&g),
                    &mut wm,
                    &mut wv,
                    hp.lr as f64,
                    (0.9, 0.999),
                    1e-8,
                    hp.weight_decay as f64,
                    step,
                    coef,
                );
            }
            assert_close(
                &format!("adamw n{n} max_norm{max_norm}"),
                &download(&param),
                &want,
                1e-6,
                1e-5,
            );
            assert_close(
                &format!("adamw m n{n} max_norm{max_norm}"),
                &download(&m),
                &wm,
                1e-6,
                1e-5,
            );
            assert_close(
                &format!("adamw v n{n} max_norm{max_norm}"),
                &download(&v),
                &wv,
                1e-6,
                1e-5,
            );
        }
    }
}

#[test]
fn a_range_updates_only_its_parameter_group() {
    let n = 10;
    let p0: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let param = upload(&p0, &[n]);
    let grad = upload(&vec![1.0; n], &[n]);
    let (m, v) = (
        Tensor::zeros(gpu(), &[n], DType::F32).unwrap(),
        Tensor::zeros(gpu(), &[n], DType::F32).unwrap(),
    );
    let clip = grad_norm_clip(&grad, 0.0).unwrap();
    adamw_step(&param, &grad, &m, &v, &clip, &AdamW::default(), 1, 3..7, 3).unwrap();
    let got = download(&param);
    for i in 0..n {
        if (3..7).contains(&i) {
            assert!(got[i] < p0[i], "parameter {i} moved");
        } else {
            assert_eq!(
                got[i], p0[i],
                "parameter {i} outside the range is untouched"
            );
        }
    }
}

#[test]
fn non_finite_gradients_skip_the_step() {
    let param = upload(&[1.0, 2.0], &[2]);
    let grad = upload(&[f32::NAN, 1.0], &[2]);
    let (m, v) = (
        Tensor::zeros(gpu(), &[2], DType::F32).unwrap(),
        Tensor::zeros(gpu(), &[2], DType::F32).unwrap(),
    );
    let clip = clip_coefficient(&sum_squares(&grad).unwrap(), 1.0).unwrap();
    adamw_step(&param, &grad, &m, &v, &clip, &AdamW::default(), 1, 0..2, 0).unwrap();
    let c = download(&clip);
    assert!(
        c[0].is_nan() && c[2] == 1.0,
        "clip reports the NaN norm and the skip: {c:?}"
    );
    assert_eq!(download(&param), vec![1.0, 2.0]);
    assert_eq!(download(&m), vec![0.0, 0.0]);
    let inf = upload(&[f32::INFINITY, 1.0], &[2]);
    let c = download(&clip_coefficient(&sum_squares(&inf).unwrap(), 0.0).unwrap());
    assert_eq!(c[2], 1.0, "an infinite norm also skips: {c:?}");
}

/// Moments that hold only the updated range (frozen parameters have no optimizer state):
/// `adamw_step` reads and writes them at their own offset and gives the same parameters
/// as full-length moments; the vec4 path (range and moment offset multiples of 4) and the
/// scalar one (an odd moment offset, a prime length) alike.
#[test]
fn compact_moments_update_like_full_ones() {
    for (range, moment_start) in [(8..24usize, 4usize), (5..18, 3), (0..13, 0), (20..21, 7)] {
        let n = 29;
        let p0: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
        let g0: Vec<f32> = (0..n).map(|i| (i as f32 * 0.91).cos()).collect();
        let len = range.end - range.start;
        let (param_full, param_compact) = (upload(&p0, &[n]), upload(&p0, &[n]));
        let grad = upload(&g0, &[n]);
        let zeros = |k: usize| Tensor::zeros(gpu(), &[k], DType::F32).unwrap();
        let (m_full, v_full) = (zeros(n), zeros(n));
        let (m_compact, v_compact) = (zeros(moment_start + len + 2), zeros(moment_start + len + 2));
        let clip = grad_norm_clip(&grad, 1.0).unwrap();
        let hp = AdamW::default();
        for step in 1..=3 {
            for (param, m, v, start) in [
                (&param_full, &m_full, &v_full, range.start),
                (&param_compact, &m_compact, &v_compact, moment_start),
            ] {
                adamw_step(param, &grad, m, v, &clip, &hp, step, range.clone(), start).unwrap();
            }
        }
        assert_eq!(download(&param_full), download(&param_compact), "{range:?}");
        let m = download(&m_compact);
        assert_eq!(
            &m[moment_start..moment_start + len],
            &download(&m_full)[range.clone()],
            "{range:?}: the moments sit at their own offset"
        );
        assert!(
            m[..moment_start]
                .iter()
                .chain(&m[moment_start + len..])
                .all(|&x| x == 0.0),
            "{range:?}: nothing outside the range's moments is written"
        );
    }
    // Moments too short for the range are an error, not a wgpu fault.
    let (param, grad) = (upload(&[0.0; 8], &[8]), upload(&[1.0; 8], &[8]));
    let short = Tensor::zeros(gpu(), &[4], DType::F32).unwrap();
    let clip = grad_norm_clip(&grad, 0.0).unwrap();
    let err = adamw_step(
        &param,
        &grad,
        &short,
        &short,
        &clip,
        &AdamW::default(),
        1,
        0..8,
        1,
    )
    .unwrap_err();
    assert!(err.to_string().contains("moments 1..9 outside 4"), "{err}");
}
