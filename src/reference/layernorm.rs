//! LayerNorm over the last dimension (biased variance, as PyTorch).

/// Returns `(y, mean, rstd)`.
pub fn layernorm(
    x: &[f64],
    gamma: &[f64],
    beta: &[f64],
    eps: f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let d = gamma.len();
    let mut y = vec![0.0; x.len()];
    let mut means = Vec::new();
    let mut rstds = Vec::new();
    for (row, out) in x.chunks(d).zip(y.chunks_mut(d)) {
        let mean = row.iter().sum::<f64>() / d as f64;
        let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / d as f64;
        let rstd = 1.0 / (var + eps).sqrt();
        for j in 0..d {
            out[j] = (row[j] - mean) * rstd * gamma[j] + beta[j];
        }
        means.push(mean);
        rstds.push(rstd);
    }
    (y, means, rstds)
}

/// Returns `(dx, dgamma, dbeta)`.
pub fn layernorm_backward(
    x: &[f64],
    gamma: &[f64],
    dy: &[f64],
    eps: f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let d = gamma.len();
    let (_, means, rstds) = layernorm(x, gamma, &vec![0.0; d], eps);
    let mut dx = vec![0.0; x.len()];
    let mut dgamma = vec![0.0; d];
    let mut dbeta = vec![0.0; d];
    for (r, ((row, dyr), dxr)) in x
        .chunks(d)
        .zip(dy.chunks(d))
        .zip(dx.chunks_mut(d))
        .enumerate()
    {
        let xhat: Vec<f64> = row.iter().map(|v| (v - means[r]) * rstds[r]).collect();
        let g: Vec<f64> = dyr.iter().zip(gamma).map(|(a, b)| a * b).collect();
        let mean_g = g.iter().sum::<f64>() / d as f64;
        let mean_gx = g.iter().zip(&xhat).map(|(a, b)| a * b).sum::<f64>() / d as f64;
        for j in 0..d {
            dxr[j] = rstds[r] * (g[j] - mean_g - xhat[j] * mean_gx);
            dgamma[j] += dyr[j] * xhat[j];
            dbeta[j] += dyr[j];
        }
    }
    (dx, dgamma, dbeta)
}
