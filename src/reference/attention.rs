//! Multi-head softmax attention over a fused Q | K | V projection.

/// `context [B*T, d]` with `context[b*T + i, h*dh + c] = sum_j softmax_j(scale * q_i . k_j +
/// mask[b, j]) v_j[c]`, where `qkv` is `[B*T, 3d]` (columns Q | K | V, head `h` at columns
/// `h*dh` of each block) and `mask` an optional additive `[B, T]` key mask. A query whose
/// every logit is -inf gets zeros.
pub fn attention_forward(
    qkv: &[f64],
    mask: Option<&[f64]>,
    batch: usize,
    seq: usize,
    heads: usize,
    scale: f64,
) -> Vec<f64> {
    let d = qkv.len() / (batch * seq * 3);
    let dh = d / heads;
    let at = |b: usize, t: usize, block: usize, h: usize, c: usize| {
        qkv[(b * seq + t) * 3 * d + block * d + h * dh + c]
    };
    let mut context = vec![0.0; batch * seq * d];
    for b in 0..batch {
        for h in 0..heads {
            for i in 0..seq {
                let logits: Vec<f64> = (0..seq)
                    .map(|j| {
                        let s: f64 = (0..dh).map(|c| at(b, i, 0, h, c) * at(b, j, 1, h, c)).sum();
                        scale * s + mask.map_or(0.0, |m| m[b * seq + j])
                    })
                    .collect();
                let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                if max == f64::NEG_INFINITY {
                    continue;
                }
                let weights: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
                let sum: f64 = weights.iter().sum();
                for c in 0..dh {
                    let v: f64 = (0..seq).map(|j| weights[j] * at(b, j, 2, h, c)).sum();
                    context[(b * seq + i) * d + h * dh + c] = v / sum;
                }
            }
        }
    }
    context
}

/// The sizes of a general attention: `batch` sequences of `tq` queries over `tk` keys,
/// width `d` in `heads` heads.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    pub batch: usize,
    pub tq: usize,
    pub tk: usize,
    pub d: usize,
    pub heads: usize,
}

/// The key `j` query `i` may see: all of them, or under `causal` those with
/// `j <= i + tk - tq` (decoder self-attention: `tq == tk`).
fn visible(s: &Sizes, causal: bool, i: usize, j: usize) -> bool {
    !causal || j + s.tq <= i + s.tk
}

/// Attention probabilities `[B, H, tq, tk]` of queries `q [B*tq, d]` over keys
/// `k [B*tk, d]`, with the additive key mask `[B, tk]` and the causal rule.
pub fn attention_probs(
    q: &[f64],
    k: &[f64],
    s: &Sizes,
    mask: Option<&[f64]>,
    causal: bool,
) -> Vec<f64> {
    let (d, dh) = (s.d, s.d / s.heads);
    let scale = 1.0 / (dh as f64).sqrt();
    let mut probs = vec![0.0; s.batch * s.heads * s.tq * s.tk];
    for b in 0..s.batch {
        for h in 0..s.heads {
            for i in 0..s.tq {
                let logits: Vec<f64> = (0..s.tk)
                    .map(|j| {
                        if !visible(s, causal, i, j) {
                            return f64::NEG_INFINITY;
                        }
                        let dot: f64 = (0..dh)
                            .map(|c| {
                                q[(b * s.tq + i) * d + h * dh + c]
                                    * k[(b * s.tk + j) * d + h * dh + c]
                            })
                            .sum();
                        scale * dot + mask.map_or(0.0, |m| m[b * s.tk + j])
                    })
                    .collect();
                let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                if max == f64::NEG_INFINITY {
                    continue;
                }
                let sum: f64 = logits.iter().map(|l| (l - max).exp()).sum();
                let row = ((b * s.heads + h) * s.tq + i) * s.tk;
                for (j, l) in logits.iter().enumerate() {
                    probs[row + j] = (l - max).exp() / sum;
                }
            }
        }
    }
    probs
}

/// `context [B*tq, d]`: per head, `softmax(q k^T / sqrt(dh) + mask) v`, with `v [B*tk, d]`.
pub fn attend(
    q: &[f64],
    k: &[f64],
    v: &[f64],
    s: &Sizes,
    mask: Option<&[f64]>,
    causal: bool,
) -> Vec<f64> {
    let probs = attention_probs(q, k, s, mask, causal);
    let (d, dh) = (s.d, s.d / s.heads);
    let mut context = vec![0.0; s.batch * s.tq * d];
    for b in 0..s.batch {
        for h in 0..s.heads {
            for i in 0..s.tq {
                let row = ((b * s.heads + h) * s.tq + i) * s.tk;
                for c in 0..dh {
                    context[(b * s.tq + i) * d + h * dh + c] = (0..s.tk)
                        .map(|j| probs[row + j] * v[(b * s.tk + j) * d + h * dh + c])
                        .sum();
                }
            }
        }
    }
    context
}

/// `(dq, dk, dv)` of `attend` from the gradient of the context.
pub fn attend_backward(
    q: &[f64],
    k: &[f64],
    v: &[f64],
    s: &Sizes,
    mask: Option<&[f64]>,
    causal: bool,
    dcontext: &[f64],
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let probs = attention_probs(q, k, s, mask, causal);
    let (d, dh) = (s.d, s.d / s.heads);
    let scale = 1.0 / (dh as f64).sqrt();
    let (mut dq, mut dk, mut dv) = (vec![0.0; q.len()], vec![0.0; k.len()], vec![0.0; v.len()]);
    for b in 0..s.batch {
        for h in 0..s.heads {
            for i in 0..s.tq {
                let row = ((b * s.heads + h) * s.tq + i) * s.tk;
                let qi = (b * s.tq + i) * d + h * dh;
                // dP[j] = dcontext_i . v_j; dS = P * (dP - sum P dP) * scale.
                let dp: Vec<f64> = (0..s.tk)
                    .map(|j| {
                        (0..dh)
                            .map(|c| dcontext[qi + c] * v[(b * s.tk + j) * d + h * dh + c])
                            .sum()
                    })
                    .collect();
                let dot: f64 = (0..s.tk).map(|j| probs[row + j] * dp[j]).sum();
                for j in 0..s.tk {
                    let kj = (b * s.tk + j) * d + h * dh;
                    let ds = scale * probs[row + j] * (dp[j] - dot);
                    for c in 0..dh {
                        dv[kj + c] += probs[row + j] * dcontext[qi + c];
                        dq[qi + c] += ds * k[kj + c];
                        dk[kj + c] += ds * q[qi + c];
                    }
                }
            }
        }
    }
    (dq, dk, dv)
}
