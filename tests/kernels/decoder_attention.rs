//! Decoder attention on the training chain (scores matmul, masked softmax, context matmul):
//! causal self-attention over a fused Q|K|V buffer and cross-attention from decoder queries
//! over a fused K|V memory with a different length, forward and backward, against the f64
//! reference (`reference::attention::attend`), whose backward is checked against finite
//! differences. Tolerance: 1e-5 absolute + 1e-4 relative.

use taskgate::gpu::DType;
use taskgate::gpu::Tensor;
use taskgate::nn::attention::{AttentionCore, Geometry};
use taskgate::nn::{Mode, Site};
use taskgate::reference::attention::{Sizes, attend, attend_backward};
use taskgate::reference::{dot, finite_difference};

use crate::common::*;

fn core(heads: usize) -> AttentionCore {
    AttentionCore {
        heads,
        dropout: 0.0,
        site: Site(0),
    }
}

/// Columns `from..from + width` of a row-major matrix with `ld` columns.
fn columns(x: &[f64], ld: usize, from: usize, width: usize) -> Vec<f64> {
    x.chunks(ld)
        .flat_map(|row| row[from..from + width].to_vec())
        .collect()
}

/// Key-padding mask `[batch, tk]`: sequence `b` has its last `b` keys padded (never all).
fn key_mask(batch: usize, tk: usize) -> Vec<f32> {
    let mut mask = vec![0.0f32; batch * tk];
    for b in 0..batch {
        for j in tk.saturating_sub(b.min(tk - 1))..tk {
            mask[b * tk + j] = -1e30;
        }
    }
    mask
}

struct Case {
    sizes: Sizes,
    causal: bool,
    masked: bool,
}

/// Runs one case on the GPU and checks the context and the gradients of q and kv.
fn check(case: &Case, seed: u64) {
    let s = case.sizes;
    let d = s.d;
    let mut r = rng(seed);
    // Self-attention (causal cases here) reads one [B*T, 3d] buffer; cross-attention reads
    // queries [B*tq, d] and keys|values [B*tk, 2d].
    let packed = case.causal;
    let g = if packed {
        Geometry::packed(s.batch, s.tq, d)
    } else {
        Geometry::cross(s.batch, s.tq, s.tk, d)
    };
    let q = uniform(&mut r, s.batch * s.tq * g.q_ld, -2.0, 2.0);
    let kv = if packed {
        q.clone()
    } else {
        uniform(&mut r, s.batch * s.tk * g.kv_ld, -2.0, 2.0)
    };
    let dcontext = uniform(&mut r, s.batch * s.tq * d, -1.0, 1.0);
    let mask = case.masked.then(|| key_mask(s.batch, s.tk));
    let (q64, kv64) = (to_f64(&q), to_f64(&kv));
    let qs = columns(&q64, g.q_ld, 0, d);
    let ks = columns(&kv64, g.kv_ld, g.k_offset, d);
    let vs = columns(&kv64, g.kv_ld, g.v_offset, d);
    let mask64 = mask.as_ref().map(|m| to_f64(m));
    let want = attend(&qs, &ks, &vs, &s, mask64.as_deref(), case.causal);
    let (dq, dk, dv) = attend_backward(
        &qs,
        &ks,
        &vs,
        &s,
        mask64.as_deref(),
        case.causal,
        &to_f64(&dcontext),
    );

    let q_t = upload(&q, &[s.batch * s.tq, g.q_ld]);
    let kv_t = if packed {
        q_t.clone()
    } else {
        upload(&kv, &[s.batch * s.tk, g.kv_ld])
    };
    let mask_t = mask.as_ref().map(|m| upload(m, &[s.batch, s.tk]));
    let attention = core(s.heads);
    let (context, probs) = attention
        .attend(&q_t, &kv_t, &g, mask_t.as_ref(), case.causal, Mode::Eval)
        .unwrap();
    let tag = format!(
        "b{} tq{} tk{} d{} h{} causal {} masked {}",
        s.batch, s.tq, s.tk, d, s.heads, case.causal, case.masked
    );
    assert_close(
        &format!("{tag} context"),
        &download(&context),
        &want,
        1e-5,
        1e-4,
    );

    let dq_t = Tensor::empty(gpu(), &[s.batch * s.tq, g.q_ld], DType::F32).unwrap();
    let dkv_t = if packed {
        dq_t.clone()
    } else {
        Tensor::empty(gpu(), &[s.batch * s.tk, g.kv_ld], DType::F32).unwrap()
    };
    let dcontext_t = upload(&dcontext, &[s.batch * s.tq, d]);
    attention
        .attend_backward(
            &q_t,
            &kv_t,
            &g,
            &probs.unwrap(),
            &dcontext_t,
            Mode::Eval,
            &dq_t,
            &dkv_t,
        )
        .unwrap();
    let (gq, gkv) = (to_f64(&download(&dq_t)), to_f64(&download(&dkv_t)));
    let f32s = |x: Vec<f64>| x.into_iter().map(|v| v as f32).collect::<Vec<f32>>();
    for (name, got, want) in [
        ("dq", columns(&gq, g.q_ld, 0, d), dq),
        ("dk", columns(&gkv, g.kv_ld, g.k_offset, d), dk),
        ("dv", columns(&gkv, g.kv_ld, g.v_offset, d), dv),
    ] {
        assert_close(&format!("{tag} {name}"), &f32s(got), &want, 1e-5, 1e-4);
    }
}

fn sizes(batch: usize, tq: usize, tk: usize, heads: usize, dh: usize) -> Sizes {
    Sizes {
        batch,
        tq,
        tk,
        d: heads * dh,
        heads,
    }
}

/// Causal self-attention: 1, primes, head widths that are not multiples of 4.
#[test]
fn causal_self_attention_matches_reference() {
    for (i, &(batch, t, heads, dh)) in [(1, 1, 1, 4), (2, 7, 3, 2), (3, 13, 2, 5), (2, 16, 4, 8)]
        .iter()
        .enumerate()
    {
        for masked in [false, true] {
            let case = Case {
                sizes: sizes(batch, t, t, heads, dh),
                causal: true,
                masked,
            };
            check(&case, 10 + i as u64);
        }
    }
}

/// Cross-attention with fewer, equal and more queries than keys, padded keys.
#[test]
fn cross_attention_matches_reference() {
    for (i, &(batch, tq, tk, heads, dh)) in [
        (1, 1, 1, 1, 4),
        (2, 5, 11, 3, 2),
        (3, 9, 4, 2, 6),
        (2, 1, 13, 4, 8),
        (2, 8, 8, 1, 3),
    ]
    .iter()
    .enumerate()
    {
        for masked in [false, true] {
            let case = Case {
                sizes: sizes(batch, tq, tk, heads, dh),
                causal: false,
                masked,
            };
            check(&case, 30 + i as u64);
        }
    }
}

/// The reference backward agrees with finite differences of the reference forward, for the
/// causal and the cross (tq != tk, padded) forms.
#[test]
fn reference_backward_matches_finite_differences() {
    for (causal, s) in [(true, sizes(2, 4, 4, 2, 3)), (false, sizes(2, 3, 5, 2, 3))] {
        let mut r = rng(5);
        let q = to_f64(&uniform(&mut r, s.batch * s.tq * s.d, -1.5, 1.5));
        let k = to_f64(&uniform(&mut r, s.batch * s.tk * s.d, -1.5, 1.5));
        let v = to_f64(&uniform(&mut r, s.batch * s.tk * s.d, -1.5, 1.5));
        let w = to_f64(&uniform(&mut r, s.batch * s.tq * s.d, -1.0, 1.0));
        let mask = to_f64(&key_mask(s.batch, s.tk));
        let m = Some(mask.as_slice());
        let (dq, dk, dv) = attend_backward(&q, &k, &v, &s, m, causal, &w);
        let tag = format!("causal {causal}");
        let fq = finite_difference(&q, 1e-6, |x| dot(&w, &attend(x, &k, &v, &s, m, causal)));
        assert_grad_close(&format!("{tag} dq"), &dq, &fq, 1e-6);
        let fk = finite_difference(&k, 1e-6, |x| dot(&w, &attend(&q, x, &v, &s, m, causal)));
        assert_grad_close(&format!("{tag} dk"), &dk, &fk, 1e-6);
        let fv = finite_difference(&v, 1e-6, |x| dot(&w, &attend(&q, &k, x, &s, m, causal)));
        assert_grad_close(&format!("{tag} dv"), &dv, &fv, 1e-6);
    }
}

/// The causal mask really hides later keys: changing the last position's key and value
/// leaves every earlier query's context unchanged.
#[test]
fn later_positions_do_not_reach_earlier_queries() {
    let (batch, t, heads, dh) = (1, 6, 2, 4);
    let d = heads * dh;
    let g = Geometry::packed(batch, t, d);
    let mut qkv = uniform(&mut rng(3), t * 3 * d, -1.0, 1.0);
    let run = |qkv: &[f32]| {
        let x = upload(qkv, &[t, 3 * d]);
        download(
            &core(heads)
                .attend(&x, &x, &g, None, true, Mode::Eval)
                .unwrap()
                .0,
        )
    };
    let before = run(&qkv);
    for c in d..3 * d {
        qkv[(t - 1) * 3 * d + c] += 5.0;
    }
    let after = run(&qkv);
    assert_eq!(before[..(t - 1) * d], after[..(t - 1) * d]);
    assert_ne!(before[(t - 1) * d..], after[(t - 1) * d..]);
}
