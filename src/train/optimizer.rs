//! AdamW over the parameter arenas: the squared gradient norm of every arena is summed on
//! the GPU, turned into a clip coefficient (and a skip flag for NaN/Inf), and each optimizer
//! group (owner x decay) is updated with its own weight decay and its own step count, so a
//! task head that saw no labels is left alone, as PyTorch leaves a parameter without a
//! gradient. Nothing is read back.

use anyhow::Result;

use crate::gpu::{DType, Tensor};
use crate::model::spec::Owner;
use crate::model::store::ParamStore;
use crate::ops::adamw::{AdamW, adamw_step, clip_coefficient};
use crate::ops::elementwise::accumulate;
use crate::ops::reduce::sum_squares;

pub struct Optimizer {
    /// Hyper-parameters (`lr` is replaced by the schedule's each step).
    pub hp: AdamW,
    /// Global gradient-norm clip; 0 or less disables clipping.
    pub max_norm: f32,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    group_steps: Vec<u64>,
}

impl Optimizer {
    pub fn new(store: &ParamStore, hp: AdamW, max_norm: f32) -> Result<Self> {
        let zeros = |t: &Tensor| Tensor::zeros(t.gpu(), t.shape(), DType::F32);
        Ok(Self {
            hp,
            max_norm,
            m: store
                .params
                .arenas
                .iter()
                .map(zeros)
                .collect::<Result<_>>()?,
            v: store
                .params
                .arenas
                .iter()
                .map(zeros)
                .collect::<Result<_>>()?,
            group_steps: vec![0; store.layout.groups.len()],
        })
    }

    /// Steps taken by each optimizer group.
    pub fn group_steps(&self) -> &[u64] {
        &self.group_steps
    }

    /// First and second moments per arena (for checkpoints).
    pub fn moments(&self) -> (&[Tensor], &[Tensor]) {
        (&self.m, &self.v)
    }

    /// Continues from a checkpoint: the moments of every arena (in arena order) and the step
    /// count of every group.
    pub fn restore(&mut self, m: &[Vec<f32>], v: &[Vec<f32>], group_steps: &[u64]) -> Result<()> {
        if m.len() != self.m.len()
            || v.len() != self.v.len()
            || group_steps.len() != self.group_steps.len()
        {
            anyhow::bail!(
                "they hold moments for {} parameter buffer(s) and step counts for {} optimizer \
                 group(s), where this model needs {} and {}",
                m.len(),
                group_steps.len(),
                self.m.len(),
                self.group_steps.len()
            );
        }
        for (tensors, values) in [(&self.m, m), (&self.v, v)] {
            for (t, data) in tensors.iter().zip(values) {
                if data.len() != t.numel() {
                    anyhow::bail!(
                        "a moment holds {} values where this model's parameter buffer holds {}",
                        data.len(),
                        t.numel()
                    );
                }
                t.write(data)?;
            }
        }
        self.group_steps = group_steps.to_vec();
        Ok(())
    }

    /// Updates the groups whose owner `active` accepts, at learning rate `lr`. Returns the
    /// clip tensor `[norm, coef, skip]`.
    pub fn step(
        &mut self,
        store: &ParamStore,
        lr: f32,
        active: impl Fn(Owner) -> bool,
    ) -> Result<Tensor> {
        let gpu = store.grads.gpu();
        let sumsq = Tensor::zeros(gpu, &[1], DType::F32)?;
        for g in &store.grads.arenas {
            accumulate(&sumsq, &sum_squares(g)?, 1.0)?;
        }
        let clip = clip_coefficient(&sumsq, self.max_norm)?;
        for (gi, group) in store.layout.groups.iter().enumerate() {
            if !active(group.owner) {
                continue;
            }
            self.group_steps[gi] += 1;
            let hp = AdamW {
                lr,
                weight_decay: if group.decay {
                    self.hp.weight_decay
                } else {
                    0.0
                },
                ..self.hp
            };
            for seg in &group.segments {
                let a = seg.arena;
                adamw_step(
                    &store.params.arenas[a],
                    &store.grads.arenas[a],
                    &self.m[a],
                    &self.v[a],
                    &clip,
                    &hp,
                    self.group_steps[gi],
                    seg.start..seg.end,
                )?;
            }
        }
        Ok(clip)
    }
}
