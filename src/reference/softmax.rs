//! Row softmax with scale and additive mask.

/// `y[r] = softmax(scale * x[r] + mask[r / rows_per_mask])` over rows of `cols`.
pub fn softmax(x: &[f64], cols: usize, scale: f64, mask: Option<(&[f64], usize)>) -> Vec<f64> {
    softmax_causal(x, cols, scale, mask, None)
}

/// As `softmax`, and with `causal = Some(queries)` row `r` (query `i = r % queries`) sees
/// only keys `c <= i + cols - queries`; the others count as -inf.
pub fn softmax_causal(
    x: &[f64],
    cols: usize,
    scale: f64,
    mask: Option<(&[f64], usize)>,
    causal: Option<usize>,
) -> Vec<f64> {
    let mut y = vec![0.0; x.len()];
    for (r, (row, out)) in x.chunks(cols).zip(y.chunks_mut(cols)).enumerate() {
        let visible = causal.map_or(cols, |q| r % q + 1 + cols - q);
        let logits: Vec<f64> = row
            .iter()
            .enumerate()
            .map(|(c, v)| {
                if c >= visible {
                    return f64::NEG_INFINITY;
                }
                scale * v + mask.map_or(0.0, |(m, per)| m[(r / per) * cols + c])
            })
            .collect();
        let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        if max == f64::NEG_INFINITY {
            continue;
        }
        let sum: f64 = logits.iter().map(|v| (v - max).exp()).sum();
        for (o, v) in out.iter_mut().zip(&logits) {
            *o = (v - max).exp() / sum;
        }
    }
    y
}

/// `dx = scale * y * (dy - sum(dy * y))` per row.
pub fn softmax_backward(y: &[f64], dy: &[f64], cols: usize, scale: f64) -> Vec<f64> {
    let mut dx = vec![0.0; y.len()];
    for ((yr, dyr), dxr) in y.chunks(cols).zip(dy.chunks(cols)).zip(dx.chunks_mut(cols)) {
        let dot: f64 = yr.iter().zip(dyr).map(|(a, b)| a * b).sum();
        for ((o, yv), dv) in dxr.iter_mut().zip(yr).zip(dyr) {
            *o = scale * yv * (dv - dot);
        }
    }
    dx
}
