//! `y = x W^T + b` with W stored `[out, in]` as Hugging Face does; backward adds dW and db.

use anyhow::Result;

use super::GradInto;
use crate::gpu::{DType, Tensor};
use crate::ops::matmul::{Kernel, Matmul, matmul, matmul_backward_into, matmul_bias_gelu};

/// A linear layer over views of the parameter and gradient arenas.
pub struct Linear {
    pub weight: Tensor,
    pub bias: Tensor,
    pub dweight: Tensor,
    pub dbias: Tensor,
}

impl Linear {
    pub fn out_features(&self) -> usize {
        self.weight.shape()[0]
    }

    pub fn in_features(&self) -> usize {
        self.weight.shape()[1]
    }

    fn spec(&self, rows: usize) -> Matmul {
        Matmul::new(
            1,
            rows,
            self.out_features(),
            self.in_features(),
            false,
            true,
        )
    }

    /// `x` `[rows, in]` to `[rows, out]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let rows = x.numel() / self.in_features();
        let x2 = x.reshape(&[rows, self.in_features()])?;
        matmul(&x2, &self.weight, Some(&self.bias), &self.spec(rows))
    }

    /// `(x W^T + b, gelu(x W^T + b))` from one kernel (the fused bias + GELU epilogue).
    pub fn forward_gelu(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let rows = x.numel() / self.in_features();
        let x2 = x.reshape(&[rows, self.in_features()])?;
        matmul_bias_gelu(
            &x2,
            &self.weight,
            &self.bias,
            &self.spec(rows),
            Kernel::Auto,
        )
    }

    /// Adds dW and db; writes or adds dx into `dx` when given.
    pub fn backward(&self, x: &Tensor, dy: &Tensor, dx: Option<GradInto<'_>>) -> Result<()> {
        let rows = x.numel() / self.in_features();
        matmul_backward_into(
            x,
            &self.weight,
            dy,
            &self.spec(rows),
            1.0,
            dx.map(GradInto::target),
            Some((&self.dweight, true)),
            Some((&self.dbias, true)),
        )
    }

    /// Adds dW and db and returns a new dx.
    pub fn backward_new(&self, x: &Tensor, dy: &Tensor) -> Result<Tensor> {
        let dx = Tensor::empty(x.gpu(), x.shape(), DType::F32)?;
        self.backward(x, dy, Some(GradInto::Write(&dx)))?;
        Ok(dx)
    }
}
