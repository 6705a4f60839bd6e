//! Each weighting method's combination as a pure f64 function of the step's per-task losses
//! and, for gradient methods, the Gram matrix of the tasks' gradients of the shared encoder,
//! written after LibMTL's implementations (median-research-group/LibMTL, `weighting/*.py`).
//! `tests/reference/weighting.py` computes the same from whole gradient vectors in NumPy;
//! the unit tests match these to its fixture. Gradient methods return the coefficients
//! `a_j` of the combined gradient `sum_j a_j g_j`: PCGrad, CAGrad and IMTL-G produce a
//! vector that is such a combination, so the Gram matrix is all they need.

use serde::{Deserialize, Serialize};

use super::solvers::{Matrix, cagrad_inner, min_norm_point, quad, solve};

/// `softmax(x)`.
pub fn softmax(x: &[f64]) -> Vec<f64> {
    let max = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = x.iter().map(|v| (v - max).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

/// `torch.optim.Adam` on a small vector, in f64: L2 weight decay added to the gradient,
/// bias-corrected moments, betas (0.9, 0.999), eps 1e-8.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SmallAdam {
    pub m: Vec<f64>,
    pub v: Vec<f64>,
    pub t: u64,
}

impl SmallAdam {
    pub fn new(n: usize) -> Self {
        Self {
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
        }
    }

    /// True when its moments are for a vector of `n` values.
    pub fn is_for(&self, n: usize) -> bool {
        self.m.len() == n && self.v.len() == n
    }

    /// One step of `x` along `grad`.
    pub fn step(&mut self, x: &mut [f64], grad: &[f64], lr: f64, weight_decay: f64) {
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
        self.t += 1;
        let c1 = 1.0 - b1.powi(self.t as i32);
        let c2 = 1.0 - b2.powi(self.t as i32);
        for i in 0..x.len() {
            let g = grad[i] + weight_decay * x[i];
            self.m[i] = b1 * self.m[i] + (1.0 - b1) * g;
            self.v[i] = b2 * self.v[i] + (1.0 - b2) * g * g;
            let denom = self.v[i].sqrt() / c2.sqrt() + eps;
            x[i] -= lr / c1 * self.m[i] / denom;
        }
    }
}

/// RLW (Lin et al. 2022): `softmax` of standard normal draws.
pub fn rlw(normals: &[f64]) -> Vec<f64> {
    softmax(normals)
}

/// DWA (Liu et al. 2019): `K softmax(r / T)` with `r_i` the ratio of task i's average loss
/// over the last period to the one before.
pub fn dwa(last: &[f64], before_last: &[f64], temperature: f64) -> Vec<f64> {
    let r: Vec<f64> = last
        .iter()
        .zip(before_last)
        .map(|(a, b)| a / b / temperature)
        .collect();
    let k = last.len() as f64;
    softmax(&r).iter().map(|w| k * w).collect()
}

/// Uncertainty weighting (Kendall et al. 2018, LibMTL's `UW`): the loss
/// `sum_i L_i / (2 exp(s_i)) + s_i / 2` weights task i by `1 / (2 exp(s_i))`.
pub fn uncertainty_weights(log_var: &[f64]) -> Vec<f64> {
    log_var.iter().map(|s| 0.5 * (-s).exp()).collect()
}

/// The gradient of that loss with respect to the log-variances `s`.
pub fn uncertainty_gradient(log_var: &[f64], losses: &[f64]) -> Vec<f64> {
    log_var
        .iter()
        .zip(losses)
        .map(|(s, l)| 0.5 - 0.5 * l * (-s).exp())
        .collect()
}

/// FAMO (Liu et al. 2023): with `z = softmax(w)` and `D_i = L_i - min_i + 1e-8`, the loss
/// `sum_i z_i log(D_i) / c`, `c = sum_i z_i / D_i` (held constant), weights task i's
/// gradient by `z_i / (c D_i)`.
pub fn famo_weights(logits: &[f64], losses: &[f64], min_losses: &[f64]) -> Vec<f64> {
    let z = softmax(logits);
    let d: Vec<f64> = losses
        .iter()
        .zip(min_losses)
        .map(|(l, m)| l - m + 1e-8)
        .collect();
    let c: f64 = z.iter().zip(&d).map(|(z, d)| z / d).sum();
    z.iter().zip(&d).map(|(z, d)| z / (c * d)).collect()
}

/// FAMO's update of the weight logits: `delta_i = log(D_i before) - log(D_i after)` pulled
/// back through the softmax (`d = J_softmax(w)^T delta`), then one Adam step.
pub fn famo_gradient(
    logits: &[f64],
    before: &[f64],
    after: &[f64],
    min_losses: &[f64],
) -> Vec<f64> {
    let z = softmax(logits);
    let delta: Vec<f64> = before
        .iter()
        .zip(after)
        .zip(min_losses)
        .map(|((b, a), m)| (b - m + 1e-8).ln() - (a - m + 1e-8).ln())
        .collect();
    let mean: f64 = z.iter().zip(&delta).map(|(z, d)| z * d).sum();
    z.iter().zip(&delta).map(|(z, d)| z * (d - mean)).collect()
}

/// GradNorm (Chen et al. 2018, LibMTL's form): with weights `w = K softmax(s)`, the norms
/// `G_i = w_i |g_i|`, their mean `G`, the relative inverse training rates
/// `r_i = (L_i / L_i(0)) / mean_j (L_j / L_j(0))` and the targets `G r_i^alpha` held
/// constant, returns the weights `w` (used for this step's gradient) and the gradient of
/// `sum_i |G_i - G r_i^alpha|` with respect to `s`.
pub fn gradnorm(
    scale_logits: &[f64],
    gram: &Matrix,
    losses: &[f64],
    initial_losses: &[f64],
    alpha: f64,
) -> (Vec<f64>, Vec<f64>) {
    let k = scale_logits.len();
    let z = softmax(scale_logits);
    let w: Vec<f64> = z.iter().map(|z| k as f64 * z).collect();
    let norms: Vec<f64> = (0..k).map(|i| gram[i][i].max(0.0).sqrt()).collect();
    let g_i: Vec<f64> = w.iter().zip(&norms).map(|(w, n)| w * n).collect();
    let g_mean = g_i.iter().sum::<f64>() / k as f64;
    let ratio: Vec<f64> = losses
        .iter()
        .zip(initial_losses)
        .map(|(l, l0)| l / l0)
        .collect();
    let ratio_mean = ratio.iter().sum::<f64>() / k as f64;
    // d/dw_i of sum_j |G_j - target_j| = sign(G_i - target_i) |g_i| (torch's sign(0) = 0).
    let dw: Vec<f64> = (0..k)
        .map(|i| {
            let target = g_mean * (ratio[i] / ratio_mean).powf(alpha);
            let diff = g_i[i] - target;
            let sign = if diff > 0.0 {
                1.0
            } else if diff < 0.0 {
                -1.0
            } else {
                0.0
            };
            sign * norms[i]
        })
        .collect();
    // w = K softmax(s): dL/ds_j = K z_j (dw_j - sum_i z_i dw_i).
    let mean: f64 = z.iter().zip(&dw).map(|(z, d)| z * d).sum();
    let ds = z
        .iter()
        .zip(&dw)
        .map(|(z, d)| k as f64 * z * (d - mean))
        .collect();
    (w, ds)
}

/// PCGrad (Yu et al. 2020, LibMTL's form): for each task i, in the order `orders[i]` (a
/// permutation of every task, i included), `pc_i -= <pc_i, g_j> / |g_j|^2 g_j` when that
/// product is negative, with `g_j` the original gradients; the result `sum_i pc_i` as
/// coefficients of the original gradients.
pub fn pcgrad(gram: &Matrix, orders: &[Vec<usize>]) -> Vec<f64> {
    let k = gram.len();
    let mut total = vec![1.0; k];
    for (i, order) in orders.iter().enumerate() {
        // pc_i = sum_l coef[l] g_l
        let mut coef = vec![0.0; k];
        coef[i] = 1.0;
        for &j in order {
            let dot: f64 = (0..k).map(|l| coef[l] * gram[l][j]).sum();
            if dot < 0.0 {
                let step = dot / gram[j][j];
                coef[j] -= step;
                total[j] -= step;
            }
        }
    }
    total
}

/// CAGrad (Liu et al. 2021, LibMTL's form): `w` solves the inner problem with radius
/// `c |g_0| + 1e-8` (`|g_0| = sqrt(mean(G) + 1e-8)`, the mean gradient's norm), then
/// `g = g_0 + lambda g_w`, `lambda = radius / (|g_w| + 1e-8)`, divided by `1 + c^2`
/// (`rescale` 1), `1 + c` (2) or nothing (0). Returns the coefficients of `g` and `w`.
pub fn cagrad(gram: &Matrix, c: f64, rescale: u8) -> (Vec<f64>, Vec<f64>) {
    let k = gram.len();
    let mean_gram = gram.iter().flatten().sum::<f64>() / (k * k) as f64;
    let g0_norm = (mean_gram + 1e-8).sqrt();
    let radius = c * g0_norm + 1e-8;
    let w = cagrad_inner(gram, radius);
    let gw_norm = quad(gram, &w, &w).max(0.0).sqrt();
    let lambda = radius / (gw_norm + 1e-8);
    let divide = match rescale {
        0 => 1.0,
        1 => 1.0 + c * c,
        _ => 1.0 + c,
    };
    let coefficients = w
        .iter()
        .map(|wi| (1.0 / k as f64 + lambda * wi) / divide)
        .collect();
    (coefficients, w)
}

/// MGDA (Sener and Koltun 2018, LibMTL with `mgda_gn = "none"`): the min-norm point's
/// weights.
pub fn mgda(gram: &Matrix) -> Vec<f64> {
    min_norm_point(gram)
}

/// IMTL-G (Liu et al. 2021, LibMTL's `IMTL` without its loss scales): with unit vectors
/// `u_i = g_i / |g_i|`, `D = [g_0 - g_i]`, `U = [u_0 - u_i]` (i = 1..K-1),
/// `alpha = g_0 U^T (D U^T)^-1` and weights `[1 - sum alpha, alpha]`: the combined gradient
/// has the same projection on every `u_i`. Uniform weights when the system is singular.
pub fn imtl(gram: &Matrix) -> Vec<f64> {
    let k = gram.len();
    let norm: Vec<f64> = (0..k).map(|i| gram[i][i].max(0.0).sqrt()).collect();
    // <g_a, u_b>
    let gu = |a: usize, b: usize| gram[a][b] / norm[b];
    let a: Vec<f64> = (1..k).map(|j| gu(0, 0) - gu(0, j)).collect();
    // (D U^T)[i][j] = <g_0 - g_i, u_0 - u_j>
    let m: Matrix = (1..k)
        .map(|i| {
            (1..k)
                .map(|j| gu(0, 0) - gu(0, j) - gu(i, 0) + gu(i, j))
                .collect()
        })
        .collect();
    // alpha M = a  <=>  M^T alpha^T = a^T
    let mt: Matrix = (0..k - 1)
        .map(|i| (0..k - 1).map(|j| m[j][i]).collect())
        .collect();
    match solve(&mt, &a) {
        Some(alpha) if alpha.iter().all(|x| x.is_finite()) => {
            let mut w = vec![1.0 - alpha.iter().sum::<f64>()];
            w.extend(alpha);
            w
        }
        _ => vec![1.0 / k as f64; k],
    }
}

/// Pairwise cosine similarities of the task gradients, upper triangle row by row
/// (`(0,1), (0,2), ..., (K-2,K-1)`); 0 where a gradient is zero.
pub fn cosines(gram: &Matrix) -> Vec<f64> {
    let k = gram.len();
    let mut out = Vec::with_capacity(k * (k - 1) / 2);
    for i in 0..k {
        for j in i + 1..k {
            let d = (gram[i][i] * gram[j][j]).sqrt();
            out.push(if d > 0.0 { gram[i][j] / d } else { 0.0 });
        }
    }
    out
}
