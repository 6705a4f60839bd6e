//! Multi-head self-attention as a short chain of kernels, with no transposes or copies:
//! one fused QKV projection writes `[B*T, 3d]`; the score matmul reads Q and K from it
//! through strided head layouts into `[B, H, T, T]`; softmax applies the scale and the
//! key-padding mask in one pass; the context matmul writes `[B*T, d]` directly in the
//! head-interleaved layout the output projection reads. The probabilities (`B*H*T*T` floats)
//! are kept for the backward. In `Mode::Infer` no backward follows, and on GPUs the whole
//! core is one fused kernel (`ops::attention`) that never stores scores or probabilities (on
//! CPU adapters the chain is faster; see `ops::attention::fused_preferred`).

use anyhow::Result;

use super::device_batch::DeviceBatch;
use super::linear::Linear;
use super::params::{ArenaSet, ParamBuilder};
use super::{GradInto, Mode, Site};
use crate::gpu::{DType, Tensor};
use crate::ops::RowStrategy;
use crate::ops::attention::{attention_forward_fused, fused_preferred, fused_unsupported};
use crate::ops::dropout::site_seed;
use crate::ops::matmul::{Kernel, Layout, Matmul, matmul_backward_into, matmul_into};
use crate::ops::softmax::{FusedDropout, RowMask, softmax_backward_with, softmax_forward_with};

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

/// The attention probabilities of a forward, and the dropped ones when dropout was on.
pub struct Probabilities {
    pub probs: Tensor,
    pub dropped: Option<Tensor>,
}

/// What the backward needs.
pub struct AttentionSaved {
    qkv: Tensor,
    /// None after a `Mode::Infer` forward.
    probs: Option<Probabilities>,
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

    /// The dropout fused into the softmax in `mode`, if any.
    fn fused_dropout(&self, mode: Mode) -> Option<FusedDropout> {
        match mode {
            Mode::Train { seed, step } if self.dropout > 0.0 => Some(FusedDropout {
                p: self.dropout,
                seed: site_seed(seed, step, self.site.0),
            }),
            _ => None,
        }
    }

    /// `(context [B*T, d], probabilities [B, H, T, T])` from `qkv` `[B*T, 3d]` and the
    /// additive key mask `[B, T]`. Scale, mask, softmax and dropout are one pass. In
    /// `Mode::Infer` on GPUs (when the head width allows) the whole core is one kernel and
    /// no probabilities are returned.
    pub fn forward(
        &self,
        qkv: &Tensor,
        mask: &Tensor,
        b: usize,
        t: usize,
        mode: Mode,
    ) -> Result<(Tensor, Option<Probabilities>)> {
        let d = qkv.numel() / (b * t * 3);
        let h = self.heads;
        let s = self.shapes(b, t, d);
        if mode == Mode::Infer && fused_unsupported(d, h).is_none() && fused_preferred(qkv.gpu()) {
            let context = attention_forward_fused(qkv, Some(mask), b, t, h, s.scale)?;
            return Ok((context, None));
        }
        let gpu = qkv.gpu();
        let scores = Tensor::empty(gpu, &[b, h, t, t], DType::F32)?;
        matmul_into(qkv, qkv, None, &scores, &s.scores, 1.0, 0.0, Kernel::Auto)?;
        let row_mask = RowMask {
            mask,
            rows_per_mask: h * t,
        };
        let strategy = RowStrategy::choose(gpu, t);
        let (probs, dropped) = softmax_forward_with(
            &scores,
            s.scale,
            Some(row_mask),
            self.fused_dropout(mode),
            strategy,
        )?;
        drop(scores);
        let context = Tensor::empty(gpu, &[b * t, d], DType::F32)?;
        let weights = dropped.as_ref().unwrap_or(&probs);
        matmul_into(
            weights,
            qkv,
            None,
            &context,
            &s.context,
            1.0,
            0.0,
            Kernel::Auto,
        )?;
        Ok((context, Some(Probabilities { probs, dropped })))
    }

    /// The gradient of `qkv` from the gradient of the context.
    pub fn backward(
        &self,
        qkv: &Tensor,
        probs: &Probabilities,
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
        let weights = probs.dropped.as_ref().unwrap_or(&probs.probs);
        let dweights = Tensor::empty(gpu, &[b, h, t, t], DType::F32)?;
        // context = weights * V: d(weights) and dV (into the V columns of dqkv).
        matmul_backward_into(
            weights,
            qkv,
            dcontext,
            &s.context,
            1.0,
            Some((&dweights, false)),
            Some((&dqkv, false)),
            None,
        )?;
        // Dropout's backward and softmax's in one pass.
        let fused = probs.dropped.as_ref().and(self.fused_dropout(mode));
        let dscores = softmax_backward_with(
            &probs.probs,
            &dweights,
            s.scale,
            fused,
            RowStrategy::choose(gpu, t),
        )?;
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
    /// Declares `query`, `key` and `value` under `projections` (one packed `[3d, d]`
    /// projection; Hugging Face's `attention.self`) and the output projection under `output`.
    pub fn new(
        projections: &ParamBuilder,
        output: &ParamBuilder,
        d: usize,
        core: AttentionCore,
    ) -> Self {
        let parts = ["query", "key", "value"].map(|p| projections.pp(p));
        Self {
            qkv: Linear::packed(&parts, d),
            output: Linear::new(output, d, d),
            core,
        }
    }

    /// Attention output before its dropout, `[B*T, d]`.
    pub fn forward(
        &self,
        w: &ArenaSet,
        x: &Tensor,
        batch: &DeviceBatch,
        mode: Mode,
    ) -> Result<(Tensor, AttentionSaved)> {
        let qkv = self.qkv.forward(w, x)?;
        let (context, probs) =
            self.core
                .forward(&qkv, &batch.mask, batch.batch, batch.seq, mode)?;
        let out = self.output.forward(w, &context)?;
        Ok((
            out,
            AttentionSaved {
                qkv,
                probs,
                context,
            },
        ))
    }

    /// Adds the parameter gradients into `g` and writes or adds dx.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        w: &ArenaSet,
        g: &ArenaSet,
        x: &Tensor,
        dout: &Tensor,
        saved: &AttentionSaved,
        batch: &DeviceBatch,
        mode: Mode,
        dx: GradInto<'_>,
    ) -> Result<()> {
        let Some(probs) = &saved.probs else {
            anyhow::bail!("attention backward after a Mode::Infer forward (nothing was kept)");
        };
        let dcontext = self.output.backward_new(w, g, &saved.context, dout)?;
        let dqkv =
            self.core
                .backward(&saved.qkv, probs, &dcontext, batch.batch, batch.seq, mode)?;
        self.qkv.backward(w, g, x, &dqkv, Some(dx))
    }
}
