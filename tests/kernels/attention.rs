//! Fused multi-head attention forward (inference) against the f64 reference, and against the
//! unfused chain the training forward runs. Tolerance: 1e-5 absolute + 1e-4 relative.

use taskgate::nn::attention::AttentionCore;
use taskgate::nn::{Mode, Site};
use taskgate::ops::attention::{attention_forward_fused, fused_preferred};
use taskgate::reference::attention::attention_forward;

use crate::common::*;

/// (batch, seq, heads, head width): 1, primes, a sequence across two workgroups (64 queries
/// each), the widest head the kernel holds.
const SHAPES: &[(usize, usize, usize, usize)] = &[
    (1, 1, 1, 4),
    (2, 7, 3, 8),
    (3, 13, 2, 32),
    (1, 67, 2, 4),
    (2, 5, 1, 128),
];

/// A key-padding mask: sequence `b` has its last `b` positions padded with `pad`.
fn padding_mask(batch: usize, seq: usize, pad: f32) -> Vec<f32> {
    let mut mask = vec![0.0f32; batch * seq];
    for b in 0..batch {
        for j in seq.saturating_sub(b)..seq {
            mask[b * seq + j] = pad;
        }
    }
    mask
}

fn core(heads: usize) -> AttentionCore {
    AttentionCore {
        heads,
        dropout: 0.0,
        site: Site(0),
    }
}

#[test]
fn fused_forward_matches_reference() {
    for (i, &(batch, seq, heads, dh)) in SHAPES.iter().enumerate() {
        let d = heads * dh;
        let mut r = rng(100 + i as u64);
        let qkv = uniform(&mut r, batch * seq * 3 * d, -2.0, 2.0);
        let scale = 1.0 / (dh as f32).sqrt();
        for pad in [None, Some(f32::MIN), Some(f32::NEG_INFINITY), Some(-1e4)] {
            let mask = pad.map(|p| padding_mask(batch, seq, p));
            let want = attention_forward(
                &to_f64(&qkv),
                mask.as_ref().map(|m| to_f64(m)).as_deref(),
                batch,
                seq,
                heads,
                scale as f64,
            );
            let mask_t = mask.as_ref().map(|m| upload(m, &[batch, seq]));
            let got = attention_forward_fused(
                &upload(&qkv, &[batch * seq, 3 * d]),
                mask_t.as_ref(),
                batch,
                seq,
                heads,
                scale,
            )
            .unwrap();
            assert_close(
                &format!("attention fused b{batch} t{seq} h{heads} dh{dh} pad {pad:?}"),
                &download(&got),
                &want,
                1e-5,
                1e-4,
            );
        }
    }
}

/// A sequence whose every key is masked gets zeros, not NaN (as the softmax kernel does).
#[test]
fn fully_masked_queries_get_zeros() {
    let (batch, seq, heads, dh) = (2, 5, 2, 4);
    let d = heads * dh;
    let qkv = uniform(&mut rng(7), batch * seq * 3 * d, -1.0, 1.0);
    let mut mask = vec![0.0f32; batch * seq];
    mask[seq..].fill(f32::NEG_INFINITY);
    let got = download(
        &attention_forward_fused(
            &upload(&qkv, &[batch * seq, 3 * d]),
            Some(&upload(&mask, &[batch, seq])),
            batch,
            seq,
            heads,
            0.5,
        )
        .unwrap(),
    );
    assert!(got[..seq * d].iter().all(|v| v.is_finite() && *v != 0.0));
    assert!(got[seq * d..].iter().all(|v| *v == 0.0), "{got:?}");
}

/// The fused kernel and the chain the training forward runs (scores, softmax, context
/// matmul) agree; `Mode::Infer` keeps no probabilities where it runs fused, and falls back to
/// the chain for head widths the kernel cannot hold.
#[test]
fn fused_and_unfused_paths_agree() {
    for &(batch, seq, heads, dh) in &[(2, 7, 3, 8), (2, 64, 12, 32), (1, 9, 2, 6)] {
        let d = heads * dh;
        let qkv = uniform(&mut rng(11), batch * seq * 3 * d, -2.0, 2.0);
        let mask = upload(&padding_mask(batch, seq, f32::MIN), &[batch, seq]);
        let qkv_t = upload(&qkv, &[batch * seq, 3 * d]);
        let attention = core(heads);
        let (chain, probs) = attention
            .forward(&qkv_t, &mask, batch, seq, Mode::Eval)
            .unwrap();
        assert!(probs.is_some());
        let chain = to_f64(&download(&chain));
        let (infer, kept) = attention
            .forward(&qkv_t, &mask, batch, seq, Mode::Infer)
            .unwrap();
        let fusable = dh % 4 == 0;
        assert_eq!(kept.is_none(), fusable && fused_preferred(gpu()));
        assert_close(
            &format!("attention infer vs chain b{batch} t{seq} h{heads} dh{dh}"),
            &download(&infer),
            &chain,
            1e-5,
            1e-4,
        );
        if fusable {
            let fused = attention_forward_fused(&qkv_t, Some(&mask), batch, seq, heads, {
                1.0 / (dh as f32).sqrt()
            })
            .unwrap();
            assert_close(
                &format!("attention fused vs chain b{batch} t{seq} h{heads} dh{dh}"),
                &download(&fused),
                &chain,
                1e-5,
                1e-4,
            );
        }
    }
}

/// Head widths the kernel cannot hold are refused with the reason.
#[test]
fn unsupported_head_widths_are_refused() {
    for (heads, dh) in [(2, 6), (1, 132)] {
        let d = heads * dh;
        let qkv = upload(&vec![0.0; 3 * 3 * d], &[3, 3 * d]);
        let err = attention_forward_fused(&qkv, None, 1, 3, heads, 1.0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("head width"), "{err}");
    }
    let qkv = upload(&[0.0; 2 * 3 * 8], &[2, 24]);
    let mask = upload(&[0.0; 3], &[3]);
    let err = attention_forward_fused(&qkv, Some(&mask), 1, 2, 2, 1.0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("mask"), "{err}");
}
