//! One post-LN decoder layer (Hugging Face's BertLayer with `is_decoder` and
//! `add_cross_attention`), over the task's gated encoder output `m` (the memory):
//!
//!   a   = LN(x + dropout(SelfAttn_causal(x)))
//!   c   = LN(a + dropout(CrossAttn(a, m, memory mask)))
//!   out = LN(c + dropout(W2 gelu(W1 c)))
//!
//! Self-attention reads a fused Q|K|V projection and masks later positions; cross-attention
//! projects queries from `a` and keys|values (one packed `[2d, d]` layer) from `m`, whose
//! padding keys are masked. The residual sums are fused into the LayerNorms.

use anyhow::Result;

use super::attention::{AttentionCore, Geometry, Probabilities};
use super::layernorm::LayerNorm;
use super::linear::Linear;
use super::params::{ArenaSet, ParamBuilder};
use super::{GradInto, Mode, Site};
use crate::gpu::{DType, Tensor};
use crate::ops::activation::gelu_backward;
use crate::ops::copy::{Block, copy_block};
use crate::ops::layernorm::LayerNormOutput;

/// Sizes a decoder layer is built with.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DecoderLayerDims {
    pub hidden: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub layer_norm_eps: f32,
    pub dropout: f32,
    pub attention_dropout: f32,
}

pub struct DecoderLayer {
    /// Q, K and V of the self-attention as one `[3d, d]` layer.
    pub self_qkv: Linear,
    pub self_output: Linear,
    pub self_core: AttentionCore,
    pub self_norm: LayerNorm,
    pub cross_query: Linear,
    /// K and V of the cross-attention as one `[2d, d]` layer over the memory.
    pub cross_kv: Linear,
    pub cross_output: Linear,
    pub cross_core: AttentionCore,
    pub cross_norm: LayerNorm,
    pub intermediate: Linear,
    pub output: Linear,
    pub output_norm: LayerNorm,
    pub dropout: f32,
    /// Hidden dropout sites: after self-attention, cross-attention and feed-forward.
    pub site: u64,
}

/// Where a layer's queries and memory sit: `batch` rows of `tq` decoder positions over `tk`
/// memory positions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecoderShape {
    pub batch: usize,
    pub tq: usize,
    pub tk: usize,
}

/// What the backward needs.
pub struct DecoderLayerSaved {
    input: Tensor,
    qkv: Tensor,
    self_probs: Probabilities,
    self_context: Tensor,
    residual1: Tensor,
    norm1: LayerNormOutput,
    query: Tensor,
    kv: Tensor,
    cross_probs: Probabilities,
    cross_context: Tensor,
    residual2: Tensor,
    norm2: LayerNormOutput,
    pre_gelu: Tensor,
    post_gelu: Tensor,
    residual3: Tensor,
    norm3: LayerNormOutput,
}

struct CrossSaved {
    query: Tensor,
    probs: Option<Probabilities>,
    context: Tensor,
    residual2: Tensor,
    norm2: LayerNormOutput,
}

struct FeedForwardSaved {
    pre_gelu: Tensor,
    post_gelu: Tensor,
    residual3: Tensor,
    norm3: LayerNormOutput,
}

impl DecoderLayer {
    /// A layer declared under `pb` with Hugging Face's names; its dropout sites are `site`
    /// (self-attention probabilities), `site + 1` (cross-attention probabilities) and the
    /// three after them.
    pub fn new(pb: &ParamBuilder, dims: &DecoderLayerDims, site: u64) -> Self {
        let (d, eps) = (dims.hidden, dims.layer_norm_eps);
        let core = |site| AttentionCore {
            heads: dims.heads,
            dropout: dims.attention_dropout,
            site: Site(site),
        };
        let attention = pb.pp("attention");
        let cross = pb.pp("crossattention");
        let cross_self = cross.pp("self");
        let output = pb.pp("output");
        Self {
            self_qkv: Linear::packed(
                &["query", "key", "value"].map(|p| attention.pp("self").pp(p)),
                d,
            ),
            self_output: Linear::new(&attention.pp("output").pp("dense"), d, d),
            self_core: core(site),
            self_norm: LayerNorm::new(&attention.pp("output").pp("LayerNorm"), d, eps),
            cross_query: Linear::new(&cross_self.pp("query"), d, d),
            cross_kv: Linear::packed(&["key", "value"].map(|p| cross_self.pp(p)), d),
            cross_output: Linear::new(&cross.pp("output").pp("dense"), d, d),
            cross_core: core(site + 1),
            cross_norm: LayerNorm::new(&cross.pp("output").pp("LayerNorm"), d, eps),
            intermediate: Linear::new(&pb.pp("intermediate").pp("dense"), d, dims.intermediate),
            output: Linear::new(&output.pp("dense"), dims.intermediate, d),
            output_norm: LayerNorm::new(&output.pp("LayerNorm"), d, eps),
            dropout: dims.dropout,
            site: site + 2,
        }
    }

    fn sites(&self) -> [Site; 3] {
        [0, 1, 2].map(|k| Site(self.site + k))
    }

    /// The layer output `[B*tq, d]` for decoder states `x [B*tq, d]` over `memory
    /// [B*tk, d]` with its additive key mask `[B, tk]`.
    pub fn forward(
        &self,
        w: &ArenaSet,
        x: &Tensor,
        memory: &Tensor,
        memory_mask: &Tensor,
        shape: DecoderShape,
        mode: Mode,
    ) -> Result<(Tensor, DecoderLayerSaved)> {
        let kv = self.cross_kv.forward(w, memory)?;
        self.forward_with_memory_kv(w, x, &kv, memory_mask, shape, mode)
    }

    /// As [`DecoderLayer::forward`], with the cross-attention keys|values `[B*tk, 2d]`
    /// already projected from the memory.
    pub fn forward_with_memory_kv(
        &self,
        w: &ArenaSet,
        x: &Tensor,
        kv: &Tensor,
        memory_mask: &Tensor,
        shape: DecoderShape,
        mode: Mode,
    ) -> Result<(Tensor, DecoderLayerSaved)> {
        let d = self.self_output.out_features;
        let qkv = self.self_qkv.forward(w, x)?;
        let (self_context, self_probs) = self.self_core.attend(
            &qkv,
            &qkv,
            &Geometry::packed(shape.batch, shape.tq, d),
            None,
            true,
            mode,
        )?;
        let (residual1, norm1) = self.self_residual(w, x, &self_context, mode)?;
        let cross = self.cross_block(w, &norm1.y, kv, memory_mask, shape, mode)?;
        let ffn = self.feed_forward(w, &cross.norm2.y, mode)?;
        let missing = || anyhow::anyhow!("attention kept no probabilities");
        Ok((
            ffn.norm3.y.clone(),
            DecoderLayerSaved {
                input: x.clone(),
                qkv,
                self_probs: self_probs.ok_or_else(missing)?,
                self_context,
                residual1,
                norm1,
                query: cross.query,
                kv: kv.clone(),
                cross_probs: cross.probs.ok_or_else(missing)?,
                cross_context: cross.context,
                residual2: cross.residual2,
                norm2: cross.norm2,
                pre_gelu: ffn.pre_gelu,
                post_gelu: ffn.post_gelu,
                residual3: ffn.residual3,
                norm3: ffn.norm3,
            },
        ))
    }

    /// One decoding step for `rows` sequences, each feeding its token at `position`: the
    /// fused Q|K|V of `x [rows, d]` is projected, its keys|values are appended to the
    /// self-attention cache (`[rows * capacity, 2d]`, row `position` of each sequence) and
    /// the query attends to the `position + 1` cached positions (no mask needed: every one
    /// is in the past); `cross_kv` holds the memory's keys|values, projected once.
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &self,
        w: &ArenaSet,
        x: &Tensor,
        cache: &Tensor,
        capacity: usize,
        position: usize,
        cross_kv: &Tensor,
        memory_mask: &Tensor,
        tk: usize,
    ) -> Result<Tensor> {
        let d = self.self_output.out_features;
        let rows = x.numel() / d;
        if position >= capacity || cache.numel() != rows * capacity * 2 * d {
            anyhow::bail!(
                "decoder cache {:?} cannot take position {position} of {rows} rows (capacity \
                 {capacity})",
                cache.shape()
            );
        }
        let qkv = self.self_qkv.forward(w, x)?;
        copy_block(
            &qkv,
            Block {
                ld: 3 * d,
                offset: d,
            },
            cache,
            Block {
                ld: capacity * 2 * d,
                offset: position * 2 * d,
            },
            rows,
            2 * d,
        )?;
        let cached = Geometry {
            batch: rows,
            tq: 1,
            tk: position + 1,
            d,
            q_ld: 3 * d,
            kv_ld: 2 * d,
            k_offset: 0,
            v_offset: d,
            kv_rows: capacity,
        };
        let mode = Mode::Infer;
        let (context, _) = self
            .self_core
            .attend(&qkv, cache, &cached, None, false, mode)?;
        let (_, norm1) = self.self_residual(w, x, &context, mode)?;
        let shape = DecoderShape {
            batch: rows,
            tq: 1,
            tk,
        };
        let cross = self.cross_block(w, &norm1.y, cross_kv, memory_mask, shape, mode)?;
        Ok(self.feed_forward(w, &cross.norm2.y, mode)?.norm3.y)
    }

    /// `LN(x + dropout(W_o context))`: the self-attention's output and residual.
    fn self_residual(
        &self,
        w: &ArenaSet,
        x: &Tensor,
        context: &Tensor,
        mode: Mode,
    ) -> Result<(Tensor, LayerNormOutput)> {
        let attn = self.self_output.forward(w, context)?;
        let attn = mode.dropout(&attn, self.dropout, self.sites()[0])?;
        self.self_norm.forward_residual(w, x, &attn)
    }

    /// `LN(a + dropout(W_o CrossAttn(a W_q, kv, mask)))`.
    fn cross_block(
        &self,
        w: &ArenaSet,
        a: &Tensor,
        kv: &Tensor,
        memory_mask: &Tensor,
        shape: DecoderShape,
        mode: Mode,
    ) -> Result<CrossSaved> {
        let d = self.self_output.out_features;
        let query = self.cross_query.forward(w, a)?;
        let (context, probs) = self.cross_core.attend(
            &query,
            kv,
            &Geometry::cross(shape.batch, shape.tq, shape.tk, d),
            Some(memory_mask),
            false,
            mode,
        )?;
        let cross = self.cross_output.forward(w, &context)?;
        let cross = mode.dropout(&cross, self.dropout, self.sites()[1])?;
        let (residual2, norm2) = self.cross_norm.forward_residual(w, a, &cross)?;
        Ok(CrossSaved {
            query,
            probs,
            context,
            residual2,
            norm2,
        })
    }

    /// `LN(c + dropout(W2 gelu(W1 c)))`.
    fn feed_forward(&self, w: &ArenaSet, c: &Tensor, mode: Mode) -> Result<FeedForwardSaved> {
        let (pre_gelu, post_gelu) = self.intermediate.forward_gelu(w, c)?;
        let ffn = self.output.forward(w, &post_gelu)?;
        let ffn = mode.dropout(&ffn, self.dropout, self.sites()[2])?;
        let (residual3, norm3) = self.output_norm.forward_residual(w, c, &ffn)?;
        Ok(FeedForwardSaved {
            pre_gelu,
            post_gelu,
            residual3,
            norm3,
        })
    }

    /// Adds the parameter gradients into `g` and the memory's gradient into `dmemory`;
    /// returns dx.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        w: &ArenaSet,
        g: &ArenaSet,
        dout: &Tensor,
        saved: &DecoderLayerSaved,
        memory: &Tensor,
        dmemory: &Tensor,
        shape: DecoderShape,
        mode: Mode,
    ) -> Result<Tensor> {
        let [self_site, cross_site, ffn_site] = self.sites();
        let d = self.self_output.out_features;
        let DecoderShape { batch, tq, tk } = shape;
        let gpu = dout.gpu();

        // Feed-forward.
        let dresidual3 = self
            .output_norm
            .backward(w, g, &saved.residual3, dout, &saved.norm3)?;
        let dffn = mode.dropout(&dresidual3, self.dropout, ffn_site)?;
        let dpost = self.output.backward_new(w, g, &saved.post_gelu, &dffn)?;
        let dpre = gelu_backward(&saved.pre_gelu, &dpost)?;
        let dc = dresidual3;
        self.intermediate
            .backward(w, g, &saved.norm2.y, &dpre, Some(GradInto::Add(&dc)))?;

        // Cross-attention.
        let dresidual2 = self
            .cross_norm
            .backward(w, g, &saved.residual2, &dc, &saved.norm2)?;
        let dcross = mode.dropout(&dresidual2, self.dropout, cross_site)?;
        let dcontext = self
            .cross_output
            .backward_new(w, g, &saved.cross_context, &dcross)?;
        let dquery = Tensor::empty(gpu, &[batch * tq, d], DType::F32)?;
        let dkv = Tensor::empty(gpu, &[batch * tk, 2 * d], DType::F32)?;
        self.cross_core.attend_backward(
            &saved.query,
            &saved.kv,
            &Geometry::cross(batch, tq, tk, d),
            &saved.cross_probs,
            &dcontext,
            mode,
            &dquery,
            &dkv,
        )?;
        self.cross_kv
            .backward(w, g, memory, &dkv, Some(GradInto::Add(dmemory)))?;
        self.cross_kv.zero_bias_grad(g, 0, d)?; // (the key bias: see Linear::zero_bias_grad)
        let da = dresidual2;
        self.cross_query
            .backward(w, g, &saved.norm1.y, &dquery, Some(GradInto::Add(&da)))?;

        // Causal self-attention.
        let dresidual1 = self
            .self_norm
            .backward(w, g, &saved.residual1, &da, &saved.norm1)?;
        let dattn = mode.dropout(&dresidual1, self.dropout, self_site)?;
        let dcontext = self
            .self_output
            .backward_new(w, g, &saved.self_context, &dattn)?;
        let dqkv = Tensor::empty(gpu, &[batch * tq, 3 * d], DType::F32)?;
        self.self_core.attend_backward(
            &saved.qkv,
            &saved.qkv,
            &Geometry::packed(batch, tq, d),
            &saved.self_probs,
            &dcontext,
            mode,
            &dqkv,
            &dqkv,
        )?;
        let dx = dresidual1;
        self.self_qkv
            .backward(w, g, &saved.input, &dqkv, Some(GradInto::Add(&dx)))?;
        self.self_qkv.zero_bias_grad(g, d, d)?;
        Ok(dx)
    }
}
