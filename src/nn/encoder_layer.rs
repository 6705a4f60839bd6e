//! One post-LN BERT layer: `h1 = LN(x + dropout(attn(x)))`,
//! `out = LN(h1 + dropout(W2 gelu(W1 h1)))`, with the residual sums fused into the
//! LayerNorms and bias + GELU fused into the first feed-forward matmul.

use anyhow::Result;

use super::attention::{AttentionCore, AttentionSaved, SelfAttention};
use super::device_batch::DeviceBatch;
use super::encoder::EncoderDims;
use super::layernorm::LayerNorm;
use super::linear::Linear;
use super::params::{ArenaSet, ParamBuilder};
use super::{GradInto, Mode, Site};
use crate::gpu::Tensor;
use crate::ops::activation::gelu_backward;
use crate::ops::layernorm::LayerNormOutput;

pub struct EncoderLayer {
    pub attention: SelfAttention,
    pub attention_norm: LayerNorm,
    pub intermediate: Linear,
    pub output: Linear,
    pub output_norm: LayerNorm,
    /// Hidden dropout after the attention output (at `site`) and the feed-forward output
    /// (at `site + 1`); the attention probabilities have their own site.
    pub dropout: f32,
    pub site: u64,
}

/// What the backward needs.
pub struct LayerSaved {
    input: Tensor,
    attention: AttentionSaved,
    residual1: Tensor,
    norm1: LayerNormOutput,
    pre_gelu: Tensor,
    post_gelu: Tensor,
    residual2: Tensor,
    norm2: LayerNormOutput,
}

impl EncoderLayer {
    /// Layer `index` of an encoder of `dims`, declared under `pb`'s prefix with Hugging
    /// Face's names. Its dropout sites are `1 + 3 index` (attention probabilities), then the
    /// two after it.
    pub fn new(pb: &ParamBuilder, dims: &EncoderDims, index: usize) -> Self {
        let (d, eps) = (dims.hidden, dims.layer_norm_eps as f32);
        let site = 1 + 3 * index as u64;
        let core = AttentionCore {
            heads: dims.heads,
            dropout: dims.attention_dropout,
            site: Site(site),
        };
        // Hugging Face's BertLayer: attention.{self, output.{dense, LayerNorm}},
        // intermediate.dense, output.{dense, LayerNorm}; each name spelled here once.
        let attention = pb.pp("attention");
        let attention_output = attention.pp("output");
        let output = pb.pp("output");
        Self {
            attention: SelfAttention::new(
                &attention.pp("self"),
                &attention_output.pp("dense"),
                d,
                core,
            ),
            attention_norm: LayerNorm::new(&attention_output.pp("LayerNorm"), d, eps),
            intermediate: Linear::new(&pb.pp("intermediate").pp("dense"), d, dims.intermediate),
            output: Linear::new(&output.pp("dense"), dims.intermediate, d),
            output_norm: LayerNorm::new(&output.pp("LayerNorm"), d, eps),
            dropout: dims.dropout,
            site: site + 1,
        }
    }

    fn sites(&self) -> (Site, Site) {
        (Site(self.site), Site(self.site + 1))
    }

    pub fn forward(
        &self,
        w: &ArenaSet,
        x: &Tensor,
        batch: &DeviceBatch,
        mode: Mode,
    ) -> Result<(Tensor, LayerSaved)> {
        let (attn_site, ffn_site) = self.sites();
        let (attn, attention) = self.attention.forward(w, x, batch, mode)?;
        let attn = mode.dropout(&attn, self.dropout, attn_site)?;
        let (residual1, norm1) = self.attention_norm.forward_residual(w, x, &attn)?;
        let (pre_gelu, post_gelu) = self.intermediate.forward_gelu(w, &norm1.y)?;
        let ffn = self.output.forward(w, &post_gelu)?;
        let ffn = mode.dropout(&ffn, self.dropout, ffn_site)?;
        let (residual2, norm2) = self.output_norm.forward_residual(w, &norm1.y, &ffn)?;
        let out = norm2.y.clone();
        Ok((
            out,
            LayerSaved {
                input: x.clone(),
                attention,
                residual1,
                norm1,
                pre_gelu,
                post_gelu,
                residual2,
                norm2,
            },
        ))
    }

    /// Adds the parameter gradients into `g`; returns dx.
    pub fn backward(
        &self,
        w: &ArenaSet,
        g: &ArenaSet,
        dout: &Tensor,
        saved: &LayerSaved,
        batch: &DeviceBatch,
        mode: Mode,
    ) -> Result<Tensor> {
        let (attn_site, ffn_site) = self.sites();
        let dresidual2 = self
            .output_norm
            .backward(w, g, &saved.residual2, dout, &saved.norm2)?;
        let dffn = mode.dropout(&dresidual2, self.dropout, ffn_site)?;
        let dpost = self.output.backward_new(w, g, &saved.post_gelu, &dffn)?;
        let dpre = gelu_backward(&saved.pre_gelu, &dpost)?;
        // dh1 = dresidual2 (residual path) + the intermediate layer's dx, added in place.
        let dh1 = dresidual2;
        self.intermediate
            .backward(w, g, &saved.norm1.y, &dpre, Some(GradInto::Add(&dh1)))?;
        let dresidual1 =
            self.attention_norm
                .backward(w, g, &saved.residual1, &dh1, &saved.norm1)?;
        let dattn = mode.dropout(&dresidual1, self.dropout, attn_site)?;
        // dx = dresidual1 (residual path) + the attention's dx, added in place.
        let dx = dresidual1;
        self.attention.backward(
            w,
            g,
            &saved.input,
            &dattn,
            &saved.attention,
            batch,
            mode,
            GradInto::Add(&dx),
        )?;
        Ok(dx)
    }
}
