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
use crate::ops::softmax::{
    Causal, FusedDropout, RowMask, softmax_backward_with, softmax_forward_with,
};

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

/// Where an attention's operands sit: queries from column block 0 of a row-major
/// `[B*tq, q_ld]` tensor, keys and values from the column blocks at `k_offset` and
/// `v_offset` of a `[B*tk, kv_ld]` tensor (each `d` wide, head `h` at columns `h*dh`).
/// Self-attention reads all three from one fused `[B*T, 3d]` Q|K|V buffer; cross-attention
/// reads queries `[B*tq, d]` from the decoder and keys|values `[B*tk, 2d]` from the memory.
/// A key/value cache holds `kv_rows >= tk` rows per sequence, of which the first `tk` are
/// filled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub batch: usize,
    pub tq: usize,
    pub tk: usize,
    pub d: usize,
    pub q_ld: usize,
    pub kv_ld: usize,
    pub k_offset: usize,
    pub v_offset: usize,
    pub kv_rows: usize,
}

impl Geometry {
    /// Self-attention over a fused `[B*T, 3d]` Q|K|V buffer.
    pub fn packed(batch: usize, t: usize, d: usize) -> Self {
        Self {
            batch,
            tq: t,
            tk: t,
            d,
            q_ld: 3 * d,
            kv_ld: 3 * d,
            k_offset: d,
            v_offset: 2 * d,
            kv_rows: t,
        }
    }

    /// Queries `[B*tq, d]` over a fused keys|values buffer `[B*tk, 2d]`.
    pub fn cross(batch: usize, tq: usize, tk: usize, d: usize) -> Self {
        Self {
            batch,
            tq,
            tk,
            d,
            q_ld: d,
            kv_ld: 2 * d,
            k_offset: 0,
            v_offset: d,
            kv_rows: tk,
        }
    }
}

struct Shapes {
    scores: Matmul,
    context: Matmul,
    scale: f32,
}

impl AttentionCore {
    fn shapes(&self, g: &Geometry) -> Shapes {
        let h = self.heads;
        let (tq, tk, d) = (g.tq, g.tk, g.d);
        let dh = d / h;
        let operand = |ld: usize, rows: usize, offset| Layout {
            ld,
            outer_stride: rows * ld,
            inner_stride: dh,
            offset,
        };
        let probs_layout = Layout {
            ld: tk,
            outer_stride: h * tq * tk,
            inner_stride: tq * tk,
            offset: 0,
        };
        Shapes {
            scores: Matmul {
                m: tq,
                n: tk,
                k: dh,
                batch: g.batch,
                batch_inner: h,
                trans_a: false,
                trans_b: true,
                a: operand(g.q_ld, tq, 0),
                b: operand(g.kv_ld, g.kv_rows, g.k_offset),
                c: probs_layout,
            },
            context: Matmul {
                m: tq,
                n: dh,
                k: tk,
                batch: g.batch,
                batch_inner: h,
                trans_a: false,
                trans_b: false,
                a: probs_layout,
                b: operand(g.kv_ld, g.kv_rows, g.v_offset),
                c: operand(d, tq, 0),
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
        if mode == Mode::Infer && fused_unsupported(d, h).is_none() && fused_preferred(qkv.gpu()) {
            let scale = self.shapes(&Geometry::packed(b, t, d)).scale;
            let context = attention_forward_fused(qkv, Some(mask), b, t, h, scale)?;
            return Ok((context, None));
        }
        self.attend(
            qkv,
            qkv,
            &Geometry::packed(b, t, d),
            Some(mask),
            false,
            mode,
        )
    }

    /// `(context [B*tq, d], probabilities [B, H, tq, tk])`: softmax attention of the queries
    /// in `q` over the keys and values in `kv` (laid out as `g` says), with the additive key
    /// mask `[B, tk]` and, when `causal`, query `i` seeing keys `0..=i + tk - tq` only.
    pub fn attend(
        &self,
        q: &Tensor,
        kv: &Tensor,
        g: &Geometry,
        mask: Option<&Tensor>,
        causal: bool,
        mode: Mode,
    ) -> Result<(Tensor, Option<Probabilities>)> {
        let (b, h, tq, tk) = (g.batch, self.heads, g.tq, g.tk);
        if h == 0 || !g.d.is_multiple_of(h) {
            anyhow::bail!("attention: width {} does not split into {h} heads", g.d);
        }
        let s = self.shapes(g);
        let gpu = q.gpu();
        let scores = Tensor::empty(gpu, &[b, h, tq, tk], DType::F32)?;
        matmul_into(q, kv, None, &scores, &s.scores, 1.0, 0.0, Kernel::Auto)?;
        let row_mask = mask.map(|mask| RowMask {
            mask,
            rows_per_mask: h * tq,
        });
        let causal = causal.then_some(Causal { queries: tq });
        let strategy = RowStrategy::choose(gpu, tk);
        let (probs, dropped) = softmax_forward_with(
            &scores,
            s.scale,
            row_mask,
            causal,
            self.fused_dropout(mode),
            strategy,
        )?;
        drop(scores);
        let context = Tensor::empty(gpu, &[b * tq, g.d], DType::F32)?;
        let weights = dropped.as_ref().unwrap_or(&probs);
        matmul_into(
            weights,
            kv,
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
        let dqkv = Tensor::empty(qkv.gpu(), &[b * t, 3 * d], DType::F32)?;
        let g = Geometry::packed(b, t, d);
        self.attend_backward(qkv, qkv, &g, probs, dcontext, mode, &dqkv, &dqkv)?;
        Ok(dqkv)
    }

    /// Writes the gradients of the query block of `q` into `dq` and of the key and value
    /// blocks of `kv` into `dkv` (same layouts as `q` and `kv`; one tensor for both when
    /// `q` and `kv` are one fused buffer), from the gradient of the context.
    #[allow(clippy::too_many_arguments)]
    pub fn attend_backward(
        &self,
        q: &Tensor,
        kv: &Tensor,
        g: &Geometry,
        probs: &Probabilities,
        dcontext: &Tensor,
        mode: Mode,
        dq: &Tensor,
        dkv: &Tensor,
    ) -> Result<()> {
        let (b, h, tq, tk) = (g.batch, self.heads, g.tq, g.tk);
        let s = self.shapes(g);
        let gpu = q.gpu();
        let weights = probs.dropped.as_ref().unwrap_or(&probs.probs);
        let dweights = Tensor::empty(gpu, &[b, h, tq, tk], DType::F32)?;
        // context = weights * V: d(weights) and dV (into the V columns of dkv).
        matmul_backward_into(
            weights,
            kv,
            dcontext,
            &s.context,
            1.0,
            Some((&dweights, false)),
            Some((dkv, false)),
            None,
        )?;
        // Dropout's backward and softmax's in one pass (masked probabilities are 0, so
        // their gradients are too: the backward needs neither mask).
        let fused = probs.dropped.as_ref().and(self.fused_dropout(mode));
        let dscores = softmax_backward_with(
            &probs.probs,
            &dweights,
            s.scale,
            fused,
            RowStrategy::choose(gpu, tk),
        )?;
        // scores = Q K^T: dQ into the query columns of dq, dK into the key columns of dkv.
        matmul_backward_into(
            q,
            kv,
            &dscores,
            &s.scores,
            1.0,
            Some((dq, false)),
            Some((dkv, false)),
            None,
        )?;
        Ok(())
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
        self.qkv.backward(w, g, x, &dqkv, Some(dx))?;
        let d = self.output.out_features;
        self.qkv.zero_bias_grad(g, d, d) // (the key bias: see Linear::zero_bias_grad)
    }
}
