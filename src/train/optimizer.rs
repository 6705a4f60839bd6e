//! AdamW over the parameter arenas: the squared gradient norm of every arena is summed on
//! the GPU, turned into a clip coefficient (and a skip flag for NaN/Inf), and each optimizer
//! group (owner x decay) is updated with its own weight decay and its own step count, so a
//! task head that saw no labels is left alone, as PyTorch leaves a parameter without a
//! gradient. Nothing is read back.
//!
//! A [`ParamPlan`] may freeze parameters and scale the learning rate per encoder layer: the
//! groups are then updated in ranges of equal scale that skip the frozen parameters, the
//! moments of an arena hold only its trained parameters (in arena order, the frozen ones cut
//! out), and the gradient norm sums only the trained ranges (frozen parameters have no
//! gradient, as in PyTorch). With nothing frozen and no decay each group is one range per
//! segment and the moments are laid out like the arenas, as before plans existed.

use anyhow::Result;

use super::freeze::ParamPlan;
use crate::gpu::{DType, Tensor};
use crate::model::spec::Owner;
use crate::model::store::{ArenaLayout, ParamStore, Segment};
use crate::ops::adamw::{AdamW, adamw_step, clip_coefficient};
use crate::ops::elementwise::accumulate;
use crate::ops::reduce::sum_squares;

/// A range of one group that AdamW updates in one dispatch.
#[derive(Clone, Debug, PartialEq)]
pub struct UpdateRange {
    pub group: usize,
    pub arena: usize,
    pub start: usize,
    pub end: usize,
    /// Where `start`'s moments sit in the arena's moment buffers.
    pub moment_start: usize,
    /// The factor on the learning rate (`[train] layer_lr_decay`).
    pub lr_scale: f64,
}

/// The update ranges of `layout` under `plan`, and the length of each arena's moments.
pub fn update_ranges(layout: &ArenaLayout, plan: &ParamPlan) -> (Vec<UpdateRange>, Vec<usize>) {
    // Frozen spans per arena, sorted: the moments leave them out.
    let mut frozen: Vec<Vec<(usize, usize)>> = vec![Vec::new(); layout.arena_lens.len()];
    for slot in layout.slots.iter().filter(|s| plan.is_frozen(&s.name)) {
        let n: usize = slot.shape.iter().product();
        frozen[slot.arena].push((slot.offset, slot.offset + n));
    }
    for spans in &mut frozen {
        spans.sort_unstable();
    }
    let moment_index = |arena: usize, at: usize| {
        at - frozen[arena]
            .iter()
            .filter(|(_, end)| *end <= at)
            .map(|(start, end)| end - start)
            .sum::<usize>()
    };
    let moment_lens = layout
        .arena_lens
        .iter()
        .enumerate()
        .map(|(a, &len)| moment_index(a, len))
        .collect();
    let mut ranges = Vec::new();
    for (group, g) in layout.groups.iter().enumerate() {
        for seg in &g.segments {
            let mut slots: Vec<_> = layout
                .slots
                .iter()
                .filter(|s| s.arena == seg.arena && s.offset >= seg.start && s.offset < seg.end)
                .collect();
            slots.sort_unstable_by_key(|s| s.offset);
            // The open range: where it starts and its scale (`None` until a trained
            // parameter joins it: padding alone is not updated).
            let (mut start, mut scale) = (seg.start, None::<f64>);
            let mut close = |start: usize, end: usize, scale: Option<f64>| {
                if let Some(lr_scale) = scale
                    && start < end
                {
                    ranges.push(UpdateRange {
                        group,
                        arena: seg.arena,
                        start,
                        end,
                        moment_start: moment_index(seg.arena, start),
                        lr_scale,
                    });
                }
            };
            for slot in slots {
                let end = slot.offset + slot.shape.iter().product::<usize>();
                if plan.is_frozen(&slot.name) {
                    close(start, slot.offset, scale);
                    (start, scale) = (end, None);
                    continue;
                }
                let s = plan.lr_scale(&slot.name);
                if scale.is_some_and(|open| open != s) {
                    close(start, slot.offset, scale);
                    start = slot.offset;
                }
                scale = Some(s);
            }
            close(start, seg.end, scale);
        }
    }
    (ranges, moment_lens)
}

pub struct Optimizer {
    /// Hyper-parameters (`lr` is replaced by the schedule's each step).
    pub hp: AdamW,
    /// Global gradient-norm clip; 0 or less disables clipping.
    pub max_norm: f32,
    /// Moments per arena (buffers of at least one element; `moment_lens` says how many
    /// hold moments).
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    moment_lens: Vec<usize>,
    ranges: Vec<UpdateRange>,
    /// Some parameter is frozen: the gradient norm sums the update ranges only.
    any_frozen: bool,
    group_steps: Vec<u64>,
}

impl Optimizer {
    /// AdamW over every parameter of `store`.
    pub fn new(store: &ParamStore, hp: AdamW, max_norm: f32) -> Result<Self> {
        Self::with_plan(store, hp, max_norm, &ParamPlan::all_trained())
    }

    /// AdamW over the parameters `plan` trains, at its learning-rate scales.
    pub fn with_plan(
        store: &ParamStore,
        hp: AdamW,
        max_norm: f32,
        plan: &ParamPlan,
    ) -> Result<Self> {
        let (ranges, moment_lens) = update_ranges(&store.layout, plan);
        let gpu = store.params.gpu();
        let zeros = |&n: &usize| Tensor::zeros(gpu, &[n.max(1)], DType::F32);
        Ok(Self {
            hp,
            max_norm,
            m: moment_lens.iter().map(zeros).collect::<Result<_>>()?,
            v: moment_lens.iter().map(zeros).collect::<Result<_>>()?,
            moment_lens,
            ranges,
            any_frozen: plan.any_frozen(),
            group_steps: vec![0; store.layout.groups.len()],
        })
    }

    /// Steps taken by each optimizer group.
    pub fn group_steps(&self) -> &[u64] {
        &self.group_steps
    }

    /// First and second moments per arena (for checkpoints): the first
    /// [`Optimizer::moment_lens`] elements of each buffer.
    pub fn moments(&self) -> (&[Tensor], &[Tensor]) {
        (&self.m, &self.v)
    }

    /// How many moments each arena has (its trained parameters and their padding).
    pub fn moment_lens(&self) -> &[usize] {
        &self.moment_lens
    }

    /// The ranges AdamW updates.
    pub fn ranges(&self) -> &[UpdateRange] {
        &self.ranges
    }

    /// The trained ranges of the encoder's groups, as segments (what the task-gradient
    /// methods compare).
    pub fn encoder_segments(&self, layout: &ArenaLayout) -> Vec<Segment> {
        self.ranges
            .iter()
            .filter(|r| layout.groups[r.group].owner == Owner::Encoder)
            .map(|r| Segment {
                arena: r.arena,
                start: r.start,
                end: r.end,
            })
            .collect()
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
            for ((t, data), &len) in tensors.iter().zip(values).zip(&self.moment_lens) {
                if data.len() != len {
                    anyhow::bail!(
                        "a moment holds {} values where this run trains {len} in that \
                         parameter buffer (another [train] freeze?)",
                        data.len(),
                    );
                }
                if len > 0 {
                    t.view(0, &[len])?.write(data)?;
                }
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
        if self.any_frozen {
            for r in &self.ranges {
                let g = store.grads.arenas[r.arena].view(r.start, &[r.end - r.start])?;
                accumulate(&sumsq, &sum_squares(&g)?, 1.0)?;
            }
        } else {
            for g in &store.grads.arenas {
                accumulate(&sumsq, &sum_squares(g)?, 1.0)?;
            }
        }
        let clip = clip_coefficient(&sumsq, self.max_norm)?;
        for (gi, group) in store.layout.groups.iter().enumerate() {
            let ranges: Vec<&UpdateRange> = self.ranges.iter().filter(|r| r.group == gi).collect();
            // A group with every parameter frozen keeps no step count either.
            if !active(group.owner) || ranges.is_empty() {
                continue;
            }
            self.group_steps[gi] += 1;
            for r in ranges {
                let hp = AdamW {
                    lr: if r.lr_scale == 1.0 {
                        lr
                    } else {
                        (lr as f64 * r.lr_scale) as f32
                    },
                    weight_decay: if group.decay {
                        self.hp.weight_decay
                    } else {
                        0.0
                    },
                    ..self.hp
                };
                let a = r.arena;
                adamw_step(
                    &store.params.arenas[a],
                    &store.grads.arenas[a],
                    &self.m[a],
                    &self.v[a],
                    &clip,
                    &hp,
                    self.group_steps[gi],
                    r.start..r.end,
                    r.moment_start,
                )?;
            }
        }
        Ok(clip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::freeze::tests::specs;

    /// Every trained parameter lies in exactly one range, no frozen one in any; ranges keep
    /// to their group's segments and hold one learning-rate scale; the moments of an arena
    /// are its elements less the frozen ones, each range's moments disjoint from the others'.
    fn check(layout: &ArenaLayout, plan: &ParamPlan) -> (Vec<UpdateRange>, Vec<usize>) {
        let (ranges, lens) = update_ranges(layout, plan);
        for slot in &layout.slots {
            let end = slot.offset + slot.shape.iter().product::<usize>();
            let covering: Vec<&UpdateRange> = ranges
                .iter()
                .filter(|r| r.arena == slot.arena && r.start < end && slot.offset < r.end)
                .collect();
            if plan.is_frozen(&slot.name) {
                assert!(covering.is_empty(), "{} is frozen but updated", slot.name);
            } else {
                assert_eq!(covering.len(), 1, "{}", slot.name);
                let r = covering[0];
                assert!(r.start <= slot.offset && end <= r.end, "{}", slot.name);
                assert_eq!(r.lr_scale, plan.lr_scale(&slot.name), "{}", slot.name);
            }
        }
        for r in &ranges {
            let seg = &layout.groups[r.group].segments;
            assert!(
                seg.iter()
                    .any(|s| s.arena == r.arena && s.start <= r.start && r.end <= s.end),
                "{r:?} outside its group"
            );
            assert!(r.moment_start + (r.end - r.start) <= lens[r.arena], "{r:?}");
        }
        for (a, &len) in lens.iter().enumerate() {
            let mut spans: Vec<(usize, usize)> = ranges
                .iter()
                .filter(|r| r.arena == a)
                .map(|r| (r.moment_start, r.moment_start + r.end - r.start))
                .collect();
            spans.sort_unstable();
            assert!(
                spans.windows(2).all(|w| w[0].1 <= w[1].0),
                "overlap {spans:?}"
            );
            let frozen: usize = layout
                .slots
                .iter()
                .filter(|s| s.arena == a && plan.is_frozen(&s.name))
                .map(|s| s.shape.iter().product::<usize>())
                .sum();
            assert_eq!(len, layout.arena_lens[a] - frozen);
        }
        (ranges, lens)
    }

    #[test]
    fn without_a_plan_each_segment_is_one_range_over_moments_like_the_arenas() {
        let specs = specs(3);
        for cap in [1 << 20, 3000] {
            let layout = ArenaLayout::plan(&specs, cap).unwrap();
            let (ranges, lens) = check(&layout, &ParamPlan::all_trained());
            let segments: Vec<(usize, usize, usize, usize)> = layout
                .groups
                .iter()
                .enumerate()
                .flat_map(|(g, group)| {
                    group
                        .segments
                        .iter()
                        .map(move |s| (g, s.arena, s.start, s.end))
                })
                .collect();
            let got: Vec<(usize, usize, usize, usize)> = ranges
                .iter()
                .map(|r| (r.group, r.arena, r.start, r.end))
                .collect();
            assert_eq!(got, segments);
            assert!(
                ranges
                    .iter()
                    .all(|r| r.moment_start == r.start && r.lr_scale == 1.0)
            );
            assert_eq!(lens, layout.arena_lens);
        }
    }

    #[test]
    fn frozen_parameters_get_no_range_and_no_moments() {
        let specs = specs(3);
        let freezes: [&[&str]; 5] = [
            &["encoder"],
            &["embeddings", "encoder.layer.0"],
            &["encoder.layer.1", "tasks.sentiment.head"],
            &["encoder.layer.2.attention.self.key"],
            &["tasks.sentiment"],
        ];
        for cap in [1 << 20, 3000] {
            let layout = ArenaLayout::plan(&specs, cap).unwrap();
            for freeze in freezes {
                for decay in [1.0, 0.8] {
                    let freeze: Vec<String> = freeze.iter().map(|s| s.to_string()).collect();
                    let plan = ParamPlan::resolve(&specs, 3, &freeze, decay).unwrap();
                    let (ranges, _) = check(&layout, &plan);
                    if freeze == ["encoder"] {
                        assert!(
                            ranges
                                .iter()
                                .all(|r| layout.groups[r.group].owner != Owner::Encoder)
                        );
                    }
                }
            }
        }
    }
}
