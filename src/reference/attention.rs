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
