//! Losses with PyTorch's mean reductions, returning `(loss, dlogits)`.

use super::activation::sigmoid;

/// `torch.nn.functional.cross_entropy(logits, targets, weight, ignore_index,
/// label_smoothing)` over rows of `classes`.
pub fn cross_entropy(
    logits: &[f64],
    targets: &[i32],
    classes: usize,
    weights: Option<&[f64]>,
    ignore_index: i32,
    smoothing: f64,
) -> (f64, Vec<f64>) {
    let w = |c: usize| weights.map_or(1.0, |w| w[c]);
    let w_total: f64 = (0..classes).map(w).sum();
    let norm: f64 = targets
        .iter()
        .filter(|&&t| t != ignore_index)
        .map(|&t| w(t as usize))
        .sum();
    let mut loss = 0.0;
    let mut grad = vec![0.0; logits.len()];
    if norm == 0.0 {
        return (0.0, grad);
    }
    for (r, &t) in targets.iter().enumerate() {
        if t == ignore_index {
            continue;
        }
        let t = t as usize;
        let row = &logits[r * classes..(r + 1) * classes];
        let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        let lp: Vec<f64> = row.iter().map(|v| v - lse).collect();
        let smooth: f64 = (0..classes).map(|c| w(c) * -lp[c]).sum();
        loss += ((1.0 - smoothing) * w(t) * -lp[t] + smoothing / classes as f64 * smooth) / norm;
        for c in 0..classes {
            let p = lp[c].exp();
            let onehot = if c == t { 1.0 } else { 0.0 };
            grad[r * classes + c] = ((1.0 - smoothing) * w(t) * (p - onehot)
                + smoothing / classes as f64 * (w_total * p - w(c)))
                / norm;
        }
    }
    (loss, grad)
}

/// `binary_cross_entropy_with_logits` averaged over the elements of rows with a non-zero mask
/// (the mask weights its row).
pub fn bce_with_logits(
    logits: &[f64],
    targets: &[f64],
    mask: &[f64],
    classes: usize,
) -> (f64, Vec<f64>) {
    bce_with_logits_weighted(logits, targets, mask, classes, None)
}

/// [`bce_with_logits`] with PyTorch's `pos_weight` (one per output): each element's loss is
/// `-(pw t log sigmoid(x) + (1 - t) log(1 - sigmoid(x)))`.
pub fn bce_with_logits_weighted(
    logits: &[f64],
    targets: &[f64],
    mask: &[f64],
    classes: usize,
    pos_weight: Option<&[f64]>,
) -> (f64, Vec<f64>) {
    let norm = mask.iter().sum::<f64>() * classes as f64;
    let mut loss = 0.0;
    let mut grad = vec![0.0; logits.len()];
    if norm == 0.0 {
        return (0.0, grad);
    }
    for (i, (&x, &t)) in logits.iter().zip(targets).enumerate() {
        let m = mask[i / classes];
        let pw = pos_weight.map_or(1.0, |w| w[i % classes]);
        // -log sigmoid(x) = log(1 + exp(-x)); -log(1 - sigmoid(x)) = log(1 + exp(x))
        let softplus = |z: f64| z.max(0.0) + (-z.abs()).exp().ln_1p();
        loss += m * (pw * t * softplus(-x) + (1.0 - t) * softplus(x)) / norm;
        grad[i] = m * (-pw * t * sigmoid(-x) + (1.0 - t) * sigmoid(x)) / norm;
    }
    (loss, grad)
}

/// `mse_loss` averaged over the elements of rows with a non-zero mask.
pub fn mse(pred: &[f64], targets: &[f64], mask: &[f64], outputs: usize) -> (f64, Vec<f64>) {
    let norm = mask.iter().sum::<f64>() * outputs as f64;
    let mut loss = 0.0;
    let mut grad = vec![0.0; pred.len()];
    if norm == 0.0 {
        return (0.0, grad);
    }
    for (i, (&x, &t)) in pred.iter().zip(targets).enumerate() {
        let m = mask[i / outputs];
        loss += m * (x - t).powi(2) / norm;
        grad[i] = m * 2.0 * (x - t) / norm;
    }
    (loss, grad)
}

/// The cross-entropy of `logits = x e^T` (`x [rows, d]`, `e [vocab, d]`, the tied output
/// projection) against `targets`, as `cross_entropy` without class weights: `(loss, dx, de)`.
pub fn tied_cross_entropy(
    x: &[f64],
    e: &[f64],
    targets: &[i32],
    d: usize,
    smoothing: f64,
) -> (f64, Vec<f64>, Vec<f64>) {
    let vocab = e.len() / d;
    let rows = targets.len();
    let logits: Vec<f64> = (0..rows * vocab)
        .map(|i| {
            let (r, v) = (i / vocab, i % vocab);
            (0..d).map(|c| x[r * d + c] * e[v * d + c]).sum()
        })
        .collect();
    let (loss, dlogits) = cross_entropy(&logits, targets, vocab, None, -100, smoothing);
    let mut dx = vec![0.0; x.len()];
    let mut de = vec![0.0; e.len()];
    for r in 0..rows {
        for v in 0..vocab {
            let g = dlogits[r * vocab + v];
            for c in 0..d {
                dx[r * d + c] += g * e[v * d + c];
                de[v * d + c] += g * x[r * d + c];
            }
        }
    }
    (loss, dx, de)
}
