//! AdamW and gradient-norm clipping as `torch.optim.AdamW` after `clip_grad_norm_`.

/// `(norm, coef)` of `clip_grad_norm_(max_norm)`; coef 1 when `max_norm <= 0`.
pub fn clip_coefficient(grads: &[f64], max_norm: f64) -> (f64, f64) {
    let norm = grads.iter().map(|g| g * g).sum::<f64>().sqrt();
    let coef = if max_norm > 0.0 {
        (max_norm / (norm + 1e-6)).min(1.0)
    } else {
        1.0
    };
    (norm, coef)
}

/// One AdamW step in place; `step` counts from 1.
#[allow(clippy::too_many_arguments)]
pub fn adamw_step(
    param: &mut [f64],
    grad: &[f64],
    m: &mut [f64],
    v: &mut [f64],
    lr: f64,
    (beta1, beta2): (f64, f64),
    eps: f64,
    weight_decay: f64,
    step: u64,
    grad_scale: f64,
) {
    let bc1 = 1.0 - beta1.powf(step as f64);
    let bc2 = 1.0 - beta2.powf(step as f64);
    for i in 0..param.len() {
        let g = grad[i] * grad_scale;
        param[i] *= 1.0 - lr * weight_decay;
        m[i] = beta1 * m[i] + (1.0 - beta1) * g;
        v[i] = beta2 * v[i] + (1.0 - beta2) * g * g;
        let denom = v[i].sqrt() / bc2.sqrt() + eps;
        param[i] -= lr / bc1 * m[i] / denom;
    }
}
