//! CPU reference implementations in f64, the ground truth every kernel is tested against
//! (and, through finite differences, every backward). Plain loops, no tricks: each function
//! states the formula its kernel must match.

pub mod activation;
pub mod attention;
pub mod gate;
pub mod layernorm;
pub mod loss;
pub mod matmul;
pub mod optim;
pub mod softmax;

/// `out = sum_i w[i] * x[i]`, used to turn a tensor output into a scalar objective when
/// checking gradients.
pub fn dot(w: &[f64], x: &[f64]) -> f64 {
    w.iter().zip(x).map(|(a, b)| a * b).sum()
}

/// Central finite-difference gradient of the scalar function `f` at `x` with step `h`.
pub fn finite_difference(x: &[f64], h: f64, mut f: impl FnMut(&[f64]) -> f64) -> Vec<f64> {
    let mut probe = x.to_vec();
    (0..x.len())
        .map(|i| {
            let orig = probe[i];
            probe[i] = orig + h;
            let up = f(&probe);
            probe[i] = orig - h;
            let down = f(&probe);
            probe[i] = orig;
            (up - down) / (2.0 * h)
        })
        .collect()
}

/// Column sums of a row-major `[rows, cols]` matrix.
pub fn colsum(x: &[f64], cols: usize) -> Vec<f64> {
    let mut out = vec![0.0; cols];
    for row in x.chunks(cols) {
        for (o, v) in out.iter_mut().zip(row) {
            *o += v;
        }
    }
    out
}

/// Gathers rows of a `[vocab, dim]` table.
pub fn embedding(ids: &[u32], table: &[f64], dim: usize) -> Vec<f64> {
    ids.iter()
        .flat_map(|&id| {
            table[id as usize * dim..(id as usize + 1) * dim]
                .iter()
                .copied()
        })
        .collect()
}

/// Gradient of [`embedding`] with respect to the table (rows of repeated ids add up).
pub fn embedding_backward(ids: &[u32], dout: &[f64], vocab: usize, dim: usize) -> Vec<f64> {
    let mut dtable = vec![0.0; vocab * dim];
    for (t, &id) in ids.iter().enumerate() {
        for j in 0..dim {
            dtable[id as usize * dim + j] += dout[t * dim + j];
        }
    }
    dtable
}
