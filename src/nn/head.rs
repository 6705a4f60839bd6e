//! A task head: optional pooling of the gated sequence (first token or masked mean), then an
//! MLP (hidden layers with GELU or tanh, then the output layer).
//!
//! Pooling is a batched matmul with host-built weights `[B, 1, T]` (one-hot on `[CLS]`, or the
//! attention mask divided by the token count), so its backward is the matmul's.

use anyhow::Result;

use super::GradInto;
use super::device_batch::DeviceBatch;
use super::linear::Linear;
use super::params::{ArenaSet, ParamBuilder};
use crate::config::Pooling;
use crate::gpu::Tensor;
use crate::ops::activation::Activation;
use crate::ops::matmul::{Matmul, matmul, matmul_backward_into};

pub struct Head {
    pub layers: Vec<Linear>,
    pub activation: Activation,
    /// `None` for token-level heads.
    pub pooling: Option<Pooling>,
}

/// What the backward needs.
pub struct HeadSaved {
    /// Inputs of each linear layer (the first is the pooled or per-token input).
    inputs: Vec<Tensor>,
    /// Pre-activations of the hidden layers.
    pre: Vec<Tensor>,
}

impl Head {
    /// An MLP from width `d` through `hidden` to `out`, its layers declared under `pb` as
    /// `0`, `1`, ... (`None` pooling: a token-level head).
    pub fn new(
        pb: &ParamBuilder,
        d: usize,
        hidden: &[usize],
        out: usize,
        activation: Activation,
        pooling: Option<Pooling>,
    ) -> Self {
        let mut width = d;
        let layers = hidden
            .iter()
            .copied()
            .chain([out])
            .enumerate()
            .map(|(k, next)| {
                let layer = Linear::new(&pb.pp(k), width, next);
                width = next;
                layer
            })
            .collect();
        Self {
            layers,
            activation,
            pooling,
        }
    }

    fn pooling_weights<'a>(&self, batch: &'a DeviceBatch) -> Option<&'a Tensor> {
        self.pooling.map(|p| match p {
            Pooling::Cls => &batch.cls_weights,
            Pooling::Mean => &batch.mean_weights,
        })
    }

    fn pool_spec(batch: &DeviceBatch, d: usize) -> Matmul {
        Matmul::new(batch.batch, 1, d, batch.seq, false, false)
    }

    /// Logits: `[B, out]` for pooled heads, `[B*T, out]` for token heads.
    pub fn forward(
        &self,
        w: &ArenaSet,
        y: &Tensor,
        batch: &DeviceBatch,
    ) -> Result<(Tensor, HeadSaved)> {
        let d = y.shape()[y.shape().len() - 1];
        let mut x = match self.pooling_weights(batch) {
            Some(w) => {
                matmul(w, y, None, &Self::pool_spec(batch, d))?.reshape(&[batch.batch, d])?
            }
            None => y.clone(),
        };
        let mut inputs = Vec::with_capacity(self.layers.len());
        let mut pre = Vec::with_capacity(self.layers.len().saturating_sub(1));
        for (k, layer) in self.layers.iter().enumerate() {
            inputs.push(x.clone());
            let u = layer.forward(w, &x)?;
            if k + 1 < self.layers.len() {
                x = self.activation.forward(&u)?;
                pre.push(u);
            } else {
                x = u;
            }
        }
        Ok((x, HeadSaved { inputs, pre }))
    }

    /// Adds the layers' parameter gradients into `g`; writes or adds the gradient of the gated
    /// sequence `y` into `dy`.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        w: &ArenaSet,
        g: &ArenaSet,
        y: &Tensor,
        dlogits: &Tensor,
        saved: &HeadSaved,
        batch: &DeviceBatch,
        dy: GradInto<'_>,
    ) -> Result<()> {
        let pooling = self.pooling_weights(batch);
        let mut grad = dlogits.clone();
        for k in (0..self.layers.len()).rev() {
            let layer = &self.layers[k];
            if k + 1 < self.layers.len() {
                grad = self.activation.backward(&saved.pre[k], &grad)?;
            }
            if k == 0 && pooling.is_none() {
                return layer.backward(w, g, &saved.inputs[0], &grad, Some(dy));
            }
            grad = layer.backward_new(w, g, &saved.inputs[k], &grad)?;
        }
        let weights = pooling.expect("pooled head");
        let d = y.shape()[y.shape().len() - 1];
        let dpooled = grad;
        matmul_backward_into(
            weights,
            y,
            &dpooled,
            &Self::pool_spec(batch, d),
            1.0,
            None,
            Some(dy.target()),
            None,
        )
    }
}
