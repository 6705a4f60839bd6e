// Shared by the shaders that compute GELU (prepended at build time; see src/shaders.rs).
// GELU in the exact erf form, as BERT: gelu(x) = 0.5 x (1 + erf(x / sqrt(2))), with erf from
// the Chebyshev fit of erfc in Numerical Recipes (fractional error below 1.2e-7), and its
// derivative gelu'(x) = 0.5 (1 + erf(x / sqrt(2))) + x exp(-x^2 / 2) / sqrt(2 pi).

const GELU_INV_SQRT2: f32 = 0.70710678118654752;
const GELU_INV_SQRT_2PI: f32 = 0.39894228040143268;

fn erf_approx(v: f32) -> f32 {
    let z = abs(v);
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418
        + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587
        + t * (-0.82215223 + t * 0.17087277))))))));
    let erfc_abs = t * exp(poly);
    return select(erfc_abs - 1.0, 1.0 - erfc_abs, v >= 0.0);
}

fn gelu_of(v: f32) -> f32 {
    return 0.5 * v * (1.0 + erf_approx(v * GELU_INV_SQRT2));
}

fn gelu_grad_of(v: f32) -> f32 {
    let cdf = 0.5 * (1.0 + erf_approx(v * GELU_INV_SQRT2));
    return cdf + v * exp(-0.5 * v * v) * GELU_INV_SQRT_2PI;
}
