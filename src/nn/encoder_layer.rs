//! One post-LN BERT layer: `h1 = LN(x + dropout(attn(x)))`,
//! `out = LN(h1 + dropout(W2 gelu(W1 h1)))`, with the residual sums fused into the
//! LayerNorms and bias + GELU fused into the first feed-forward matmul.

use anyhow::Result;

use super::attention::{AttentionSaved, SelfAttention};
use super::layernorm::LayerNorm;
use super::linear::Linear;
use super::{GradInto, Mode, Site};
use crate::gpu::Tensor;
use crate::model::device_batch::DeviceBatch;
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
    fn sites(&self) -> (Site, Site) {
        (Site(self.site), Site(self.site + 1))
    }

    pub fn forward(
        &self,
        x: &Tensor,
        batch: &DeviceBatch,
        mode: Mode,
    ) -> Result<(Tensor, LayerSaved)> {
        let (attn_site, ffn_site) = self.sites();
        let (attn, attention) = self.attention.forward(x, batch, mode)?;
        let attn = mode.dropout(&attn, self.dropout, attn_site)?;
        let (residual1, norm1) = self.attention_norm.forward_residual(x, &attn)?;
        let (pre_gelu, post_gelu) = self.intermediate.forward_gelu(&norm1.y)?;
        let ffn = self.output.forward(&post_gelu)?;
        let ffn = mode.dropout(&ffn, self.dropout, ffn_site)?;
        let (residual2, norm2) = self.output_norm.forward_residual(&norm1.y, &ffn)?;
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

    /// Adds the parameter gradients; returns dx.
    pub fn backward(
        &self,
        dout: &Tensor,
        saved: &LayerSaved,
        batch: &DeviceBatch,
        mode: Mode,
    ) -> Result<Tensor> {
        let (attn_site, ffn_site) = self.sites();
        let dresidual2 = self
            .output_norm
            .backward(&saved.residual2, dout, &saved.norm2)?;
        let dffn = mode.dropout(&dresidual2, self.dropout, ffn_site)?;
        let dpost = self.output.backward_new(&saved.post_gelu, &dffn)?;
        let dpre = gelu_backward(&saved.pre_gelu, &dpost)?;
        // dh1 = dresidual2 (residual path) + the intermediate layer's dx, added in place.
        let dh1 = dresidual2;
        self.intermediate
            .backward(&saved.norm1.y, &dpre, Some(GradInto::Add(&dh1)))?;
        let dresidual1 = self
            .attention_norm
            .backward(&saved.residual1, &dh1, &saved.norm1)?;
        let dattn = mode.dropout(&dresidual1, self.dropout, attn_site)?;
        // dx = dresidual1 (residual path) + the attention's dx, added in place.
        let dx = dresidual1;
        self.attention.backward(
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
