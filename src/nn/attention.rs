//! Multi-head self-attention as a short chain of kernels, with no transposes or copies:
//! one fused QKV projection writes `[B*T, 3d]`; the score matmul reads Q and K from it
//! through strided head layouts into `[B, H, T, T]`; softmax applies the scale and the
//! key-padding mask in one pass; the context matmul writes `[B*T, d]` directly in the
//! head-interleaved layout the output projection reads. The probabilities (`B*H*T*T` floats)
//! are kept for the backward; the dropout mask is recomputed from its seed.

use anyhow::Result;

use super::linear::Linear;
use super::{GradInto, Mode, Site};
use crate::gpu::{DType, Tensor};
use crate::model::device_batch::DeviceBatch;
use crate::ops::matmul::{Kernel, Layout, Matmul, matmul_backward_into, matmul_into};
use crate::ops::softmax::{RowMask, softmax_backward, softmax_forward};

pub struct SelfAttention {
    /// Q, K and V projections as one `[3d, d]` layer.
    pub qkv: Linear,
    pub output: Linear,
    pub core: AttentionCore,
}

/// Softmax attention over a fused `[B*T, 3d]` Q|K|V buffer, without projections.
pub struct AttentionCore {
    pub heads: usize,
    /// Dropout on the attention probabilities, at `site`.
    pub dropout: f32,
    pub site: Site,
}

/// What the backward needs.
pub struct AttentionSaved {
    qkv: Tensor,
    probs: Tensor,
    context: Tensor,
}

struct Shapes {
    scores: Matmul,
    context: Matmul,
    scale: f32,
}

impl AttentionCore {
    fn shapes(&self, b: usize, t: usize, d: usize) -> Shapes {
        let h = self.heads;
        let dh = d / h;
        let qkv_layout = |offset| Layout {
            ld: 3 * d,
            outer_stride: t * 3 * d,
            inner_stride: dh,
            offset,
        };
        let probs_layout = Layout {
            ld: t,
            outer_stride: h * t * t,
            inner_stride: t * t,
            offset: 0,
        };
        Shapes {
            scores: Matmul {
                m: t,
                n: t,
                k: dh,
                batch: b,
                batch_inner: h,
                trans_a: false,
                trans_b: true,
                a: qkv_layout(0),
                b: qkv_layout(d),
                c: probs_layout,
            },
            context: Matmul {
                m: t,
                n: dh,
                k: t,
                batch: b,
                batch_inner: h,
                trans_a: false,
                trans_b: false,
                a: probs_layout,
                b: qkv_layout(2 * d),
                c: Layout {
                    ld: d,
                    outer_stride: t * d,
                    inner_stride: dh,
                    offset: 0,
                },
            },
            scale: 1.0 / (dh as f32).sqrt(),
        }
    }

    /// `(context [B*T, d], probabilities [B, H, T, T])` from `qkv` `[B*T, 3d]` and the
    /// additive key mask `[B, T]`.
    pub fn forward(
        &self,
        qkv: &Tensor,
        mask: &Tensor,
        b: usize,
        t: usize,
        mode: Mode,
    ) -> Result<(Tensor, Tensor)> {
        let d = qkv.numel() / (b * t * 3);
        let h = self.heads;
        let s = self.shapes(b, t, d);
        let gpu = qkv.gpu();
        let scores = Tensor::empty(gpu, &[b, h, t, t], DType::F32)?;
        matmul_into(qkv, qkv, None, &scores, &s.scores, 1.0, 0.0, Kernel::Auto)?;
        let row_mask = RowMask {
            mask,
            rows_per_mask: h * t,
        };
        let probs = softmax_forward(&scores, s.scale, Some(row_mask))?;
        let dropped = mode.dropout(&probs, self.dropout, self.site)?;
        let context = Tensor::empty(gpu, &[b * t, d], DType::F32)?;
        matmul_into(
            &dropped,
            qkv,
            None,
            &context,
            &s.context,
            1.0,
            0.0,
            Kernel::Auto,
        )?;
        Ok((context, probs))
    }

    /// The gradient of `qkv` from the gradient of the context.
    pub fn backward(
        &self,
        qkv: &Tensor,
        probs: &Tensor,
        dcontext: &Tensor,
        b: usize,
        t: usize,
        mode: Mode,
    ) -> Result<Tensor> {
        let d = qkv.numel() / (b * t * 3);
        let h = self.heads;
        let s = self.shapes(b, t, d);
        let gpu = qkv.gpu();
        let dqkv = Tensor::empty(gpu, &[b * t, 3 * d], DType::F32)?;
        let dropped = mode.dropout(probs, self.dropout, self.site)?;
        let ddropped = Tensor::empty(gpu, &[b, h, t, t], DType::F32)?;
        // context = dropped * V: d(dropped) and dV (into the V columns of dqkv).
        matmul_backward_into(
            &dropped,
            qkv,
            dcontext,
            &s.context,
            1.0,
            Some((&ddropped, false)),
            Some((&dqkv, false)),
            None,
        )?;
        let dprobs = mode.dropout(&ddropped, self.dropout, self.site)?;
        let dscores = softmax_backward(probs, &dprobs, s.scale)?;
        // scores = Q K^T: dQ and dK into their columns of dqkv.
        matmul_backward_into(
            qkv,
            qkv,
            &dscores,
            &s.scores,
            1.0,
            Some((&dqkv, false)),
            Some((&dqkv, false)),
            None,
        )?;
        Ok(dqkv)
    }
}

impl SelfAttention {
    /// Attention output before its dropout, `[B*T, d]`.
    pub fn forward(
        &self,
        x: &Tensor,
        batch: &DeviceBatch,
        mode: Mode,
    ) -> Result<(Tensor, AttentionSaved)> {
        let qkv = self.qkv.forward(x)?;
        let (context, probs) =
            self.core
                .forward(&qkv, &batch.mask, batch.batch, batch.seq, mode)?;
        let out = self.output.forward(&context)?;
        Ok((
            out,
            AttentionSaved {
                qkv,
                probs,
                context,
            },
        ))
    }

    /// Adds the parameter gradients and writes or adds dx.
    pub fn backward(
        &self,
        x: &Tensor,
        dout: &Tensor,
        saved: &AttentionSaved,
        batch: &DeviceBatch,
        mode: Mode,
        dx: GradInto<'_>,
    ) -> Result<()> {
        let dcontext = self.output.backward_new(&saved.context, dout)?;
        let dqkv = self.core.backward(
            &saved.qkv,
            &saved.probs,
            &dcontext,
            batch.batch,
            batch.seq,
            mode,
        )?;
        self.qkv.backward(x, &dqkv, Some(dx))
    }
}
