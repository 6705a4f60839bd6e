//! The task gate `y = sigmoid(a) * h` on rows of `d` features.

use super::activation::sigmoid;

/// `a` holds one logit per row (`vector = false`) or one per element.
pub fn gate(a: &[f64], h: &[f64], d: usize, vector: bool) -> Vec<f64> {
    h.iter()
        .enumerate()
        .map(|(i, v)| sigmoid(if vector { a[i] } else { a[i / d] }) * v)
        .collect()
}

/// Returns `(dh, da)`.
pub fn gate_backward(
    a: &[f64],
    h: &[f64],
    dy: &[f64],
    d: usize,
    vector: bool,
) -> (Vec<f64>, Vec<f64>) {
    let mut dh = vec![0.0; h.len()];
    let mut da = vec![0.0; a.len()];
    for i in 0..h.len() {
        let ai = if vector { i } else { i / d };
        let s = sigmoid(a[ai]);
        dh[i] = s * dy[i];
        da[ai] += dy[i] * h[i] * s * (1.0 - s);
    }
    (dh, da)
}
