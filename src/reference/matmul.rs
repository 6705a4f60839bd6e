//! Batched matrix product with optional transposes and bias, on contiguous operands.

/// Shape of a contiguous batched product: `op(A)` is M x K, `op(B)` K x N, `batch` of each.
#[derive(Clone, Copy, Debug)]
pub struct MatmulShape {
    pub batch: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub trans_a: bool,
    pub trans_b: bool,
}

impl MatmulShape {
    pub fn new(batch: usize, m: usize, n: usize, k: usize, trans_a: bool, trans_b: bool) -> Self {
        Self {
            batch,
            m,
            n,
            k,
            trans_a,
            trans_b,
        }
    }
    pub fn a_len(&self) -> usize {
        self.batch * self.m * self.k
    }
    pub fn b_len(&self) -> usize {
        self.batch * self.k * self.n
    }
    pub fn c_len(&self) -> usize {
        self.batch * self.m * self.n
    }
    fn a_at(&self, a: &[f64], z: usize, i: usize, p: usize) -> f64 {
        let base = z * self.m * self.k;
        if self.trans_a {
            a[base + p * self.m + i]
        } else {
            a[base + i * self.k + p]
        }
    }
    fn b_at(&self, b: &[f64], z: usize, p: usize, j: usize) -> f64 {
        let base = z * self.k * self.n;
        if self.trans_b {
            b[base + j * self.k + p]
        } else {
            b[base + p * self.n + j]
        }
    }
}

/// `C[z] = op(A[z]) op(B[z]) + bias` (bias per column of C).
pub fn matmul(a: &[f64], b: &[f64], bias: Option<&[f64]>, s: &MatmulShape) -> Vec<f64> {
    let mut c = vec![0.0; s.c_len()];
    for z in 0..s.batch {
        for i in 0..s.m {
            for j in 0..s.n {
                let mut acc = bias.map_or(0.0, |bias| bias[j]);
                for p in 0..s.k {
                    acc += s.a_at(a, z, i, p) * s.b_at(b, z, p, j);
                }
                c[(z * s.m + i) * s.n + j] = acc;
            }
        }
    }
    c
}

/// Gradients `(dA, dB, dbias)` of [`matmul`] given `dC`, in the stored layouts of A and B.
pub fn matmul_backward(
    a: &[f64],
    b: &[f64],
    dc: &[f64],
    s: &MatmulShape,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut da = vec![0.0; s.a_len()];
    let mut db = vec![0.0; s.b_len()];
    let mut dbias = vec![0.0; s.n];
    for z in 0..s.batch {
        for i in 0..s.m {
            for j in 0..s.n {
                let g = dc[(z * s.m + i) * s.n + j];
                dbias[j] += g;
                for p in 0..s.k {
                    let ai = if s.trans_a {
                        z * s.m * s.k + p * s.m + i
                    } else {
                        z * s.m * s.k + i * s.k + p
                    };
                    let bi = if s.trans_b {
                        z * s.k * s.n + j * s.k + p
                    } else {
                        z * s.k * s.n + p * s.n + j
                    };
                    da[ai] += g * b[bi];
                    db[bi] += g * a[ai];
                }
            }
        }
    }
    (da, db, dbias)
}
