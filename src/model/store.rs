//! Parameters and gradients on the GPU, packed into flat *arenas* (one buffer each, no larger
//! than the device lets one binding be), so the optimizer and the gradient norm run over a
//! few large buffers instead of hundreds of small ones.
//!
//! Within an arena, parameters are grouped by (owner, decay): the encoder's decayed weights,
//! its biases and LayerNorm parameters, then each task's. Each group is a contiguous range,
//! which AdamW updates in one dispatch with the group's own weight decay and step count.
//! Every parameter starts on a 256-byte boundary (bindable as a view on any adapter), except
//! the `packed` ones that directly follow their predecessor (Q, K, V form one matrix).

use std::collections::HashMap;

use anyhow::{Result, anyhow, bail};

use super::host::{HostParams, HostTensor};
use super::spec::{Owner, ParamSpec};
use crate::gpu::{Gpu, Tensor};
use crate::nn::params::{ArenaSet, ParamSlot};

/// Elements per 256 bytes: the alignment of every parameter that starts a run.
pub const ALIGN_ELEMENTS: usize = 64;

/// Where one parameter lives.
#[derive(Clone, Debug)]
pub struct Slot {
    pub name: String,
    pub shape: Vec<usize>,
    pub arena: usize,
    pub offset: usize,
}

/// A contiguous range of one arena.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub arena: usize,
    pub start: usize,
    pub end: usize,
}

/// Parameters the optimizer treats alike: one owner, decayed or not.
#[derive(Clone, Debug)]
pub struct OptimGroup {
    pub owner: Owner,
    pub decay: bool,
    pub segments: Vec<Segment>,
}

/// The placement of every parameter.
#[derive(Clone, Debug)]
pub struct ArenaLayout {
    pub slots: Vec<Slot>,
    pub arena_lens: Vec<usize>,
    pub groups: Vec<OptimGroup>,
    index: HashMap<String, usize>,
}

impl ArenaLayout {
    /// Places `specs` into arenas of at most `cap` elements.
    pub fn plan(specs: &[ParamSpec], cap: usize) -> Result<Self> {
        let cap = cap / ALIGN_ELEMENTS * ALIGN_ELEMENTS;
        let mut owners: Vec<Owner> = Vec::new();
        for s in specs {
            if !owners.contains(&s.owner) {
                owners.push(s.owner);
            }
        }
        let mut slots = Vec::new();
        let mut arena_lens = vec![0usize];
        let mut groups = Vec::new();
        for owner in owners {
            for decay in [true, false] {
                let members: Vec<&ParamSpec> = specs
                    .iter()
                    .filter(|s| s.owner == owner && s.decay == decay)
                    .collect();
                if members.is_empty() {
                    continue;
                }
                let mut segments: Vec<Segment> = Vec::new();
                let mut i = 0;
                while i < members.len() {
                    // A run: one parameter and the packed ones that follow it.
                    let mut j = i + 1;
                    while j < members.len() && members[j].packed {
                        j += 1;
                    }
                    let run: usize = members[i..j].iter().map(|s| s.numel()).sum();
                    if run > cap {
                        bail!(
                            "parameter {} needs {} MiB, more than the {} MiB one buffer \
                             binding can hold (the adapter's limit, at most 1 GiB); it is set \
                             by {}: make that smaller",
                            members[i].name,
                            (run as u64).saturating_mul(4) >> 20,
                            (cap as u64 * 4) >> 20,
                            super::size::setting_of(&members[i].name)
                        );
                    }
                    let arena = arena_lens.len() - 1;
                    let mut start = arena_lens[arena].next_multiple_of(ALIGN_ELEMENTS);
                    let mut arena = arena;
                    if start + run > cap {
                        arena_lens.push(0);
                        arena += 1;
                        start = 0;
                    }
                    let mut offset = start;
                    for s in &members[i..j] {
                        slots.push(Slot {
                            name: s.name.clone(),
                            shape: s.shape.clone(),
                            arena,
                            offset,
                        });
                        offset += s.numel();
                    }
                    arena_lens[arena] = offset;
                    match segments.last_mut() {
                        Some(seg) if seg.arena == arena => seg.end = offset,
                        _ => segments.push(Segment {
                            arena,
                            start,
                            end: offset,
                        }),
                    }
                    i = j;
                }
                groups.push(OptimGroup {
                    owner,
                    decay,
                    segments,
                });
            }
        }
        for len in &mut arena_lens {
            *len = (*len).next_multiple_of(ALIGN_ELEMENTS).max(ALIGN_ELEMENTS);
        }
        let index = slots
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        Ok(Self {
            slots,
            arena_lens,
            groups,
            index,
        })
    }

    pub fn slot(&self, name: &str) -> Result<&Slot> {
        self.index
            .get(name)
            .map(|&i| &self.slots[i])
            .ok_or_else(|| anyhow!("no parameter named {name}"))
    }

    /// Where each of `specs` (the list this layout was planned from) lives, in their order:
    /// the table layers find their tensors by.
    pub fn param_slots(&self, specs: &[ParamSpec]) -> Result<Vec<ParamSlot>> {
        specs
            .iter()
            .map(|spec| {
                let s = self.slot(&spec.name)?;
                Ok(ParamSlot {
                    arena: s.arena,
                    offset: s.offset,
                    shape: s.shape.clone(),
                })
            })
            .collect()
    }
}

/// Parameters and the training step's gradients on the GPU, in arenas of one layout.
pub struct ParamStore {
    pub layout: ArenaLayout,
    pub params: ArenaSet,
    /// The gradient set training steps accumulate into (more sets of the same layout:
    /// [`ArenaSet::zeros_like`]).
    pub grads: ArenaSet,
}

/// The largest arena taskgate makes on any adapter, in bytes.
pub const MAX_ARENA_BYTES: u64 = 1 << 30;

/// Largest arena, in elements, that one binding can hold on `gpu`.
pub fn arena_capacity(gpu: &Gpu) -> usize {
    let limits = gpu.limits();
    let bytes = limits
        .max_storage_buffer_binding_size
        .min(limits.max_buffer_size)
        .min(MAX_ARENA_BYTES);
    (bytes / 4) as usize
}

impl ParamStore {
    /// Allocates the arenas and uploads `host` (which must hold every parameter of `specs`).
    pub fn new(gpu: &Gpu, specs: &[ParamSpec], host: &HostParams) -> Result<Self> {
        Self::with_capacity(gpu, specs, host, arena_capacity(gpu))
    }

    /// As [`ParamStore::new`] with an explicit arena capacity in elements (tests use small
    /// ones to exercise several arenas).
    pub fn with_capacity(
        gpu: &Gpu,
        specs: &[ParamSpec],
        host: &HostParams,
        cap: usize,
    ) -> Result<Self> {
        let layout = ArenaLayout::plan(specs, cap)?;
        if gpu.is_cpu_adapter() {
            // A CPU adapter's buffers are host memory: the arenas, their gradients and the
            // staging copy made here.
            super::size::check_params_memory(
                specs,
                3,
                super::size::available_host_memory(),
                "the model",
            )?;
        }
        let mut staging: Vec<Vec<f32>> = layout.arena_lens.iter().map(|&n| vec![0.0; n]).collect();
        for slot in &layout.slots {
            let t = host
                .get(&slot.name)
                .ok_or_else(|| anyhow!("missing parameter {}", slot.name))?;
            staging[slot.arena][slot.offset..slot.offset + t.data.len()].copy_from_slice(&t.data);
        }
        let params = staging
            .iter()
            .map(|data| Tensor::from_slice(gpu, data, &[data.len()]))
            .collect::<Result<Vec<_>>>()?;
        let slots = std::sync::Arc::new(layout.param_slots(specs)?);
        let params = ArenaSet::new(params, slots);
        let grads = params.zeros_like()?;
        Ok(Self {
            layout,
            params,
            grads,
        })
    }

    /// Sets every gradient to zero (recorded on the GPU; no host work).
    pub fn zero_grads(&self) {
        self.grads.zero();
    }

    async fn download(&self, arenas: &[Tensor]) -> Result<HostParams> {
        let gpu = arenas[0].gpu();
        let refs: Vec<&Tensor> = arenas.iter().collect();
        let data = gpu.read_f32(&refs).await?;
        Ok(self
            .layout
            .slots
            .iter()
            .map(|s| {
                let n: usize = s.shape.iter().product();
                (
                    s.name.clone(),
                    HostTensor {
                        shape: s.shape.clone(),
                        data: data[s.arena][s.offset..s.offset + n].to_vec(),
                    },
                )
            })
            .collect())
    }

    /// Every parameter, read back to the host (awaits the device).
    pub async fn download_params_async(&self) -> Result<HostParams> {
        self.download(&self.params.arenas).await
    }

    /// Every parameter, read back to the host (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn download_params(&self) -> Result<HostParams> {
        self.params
            .gpu()
            .block_on(self.download(&self.params.arenas))?
    }

    /// Every tensor of `set` (a set laid out like the parameters), read back to the host
    /// (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn download_set(&self, set: &ArenaSet) -> Result<HostParams> {
        set.gpu().block_on(self.download(&set.arenas))?
    }

    /// Every gradient, read back to the host (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn download_grads(&self) -> Result<HostParams> {
        self.grads
            .gpu()
            .block_on(self.download(&self.grads.arenas))?
    }

    /// Total number of parameter elements (without padding).
    pub fn numel(&self) -> usize {
        self.layout
            .slots
            .iter()
            .map(|s| s.shape.iter().product::<usize>())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{GateMode, HeadConfig, Pooling};
    use crate::model::spec::{EncoderDims, ModelSpec};
    use crate::tasks::{TaskKind, TaskSpec};

    fn spec() -> ModelSpec {
        ModelSpec {
            encoder: EncoderDims {
                vocab_size: 50,
                hidden: 12,
                layers: 2,
                heads: 3,
                intermediate: 20,
                max_positions: 16,
                type_vocab_size: 2,
                layer_norm_eps: 1e-12,
                dropout: 0.1,
                attention_dropout: 0.1,
                seed: 1,
                max_length: 16,
            },
            tasks: vec![TaskSpec {
                name: "t".into(),
                kind: TaskKind::CLASSIFICATION,
                labels: Some(vec!["a".into(), "b".into()]),
                outputs: None,
                gate: GateMode::Vector,
                pooling: Some(Pooling::Cls),
                head: HeadConfig::default(),
                lambda: 1.0,
                ..TaskSpec::new("t", TaskKind::CLASSIFICATION)
            }],
        }
    }

    #[test]
    fn layout_keeps_groups_contiguous_aligned_and_qkv_packed() {
        let specs = spec().param_specs();
        for cap in [1 << 20, 2000] {
            let layout = ArenaLayout::plan(&specs, cap).unwrap();
            assert_eq!(layout.slots.len(), specs.len());
            // No overlaps, every slot inside its arena.
            let mut spans: Vec<(usize, usize, usize)> = layout
                .slots
                .iter()
                .map(|s| {
                    (
                        s.arena,
                        s.offset,
                        s.offset + s.shape.iter().product::<usize>(),
                    )
                })
                .collect();
            spans.sort();
            for w in spans.windows(2) {
                assert!(w[0].0 != w[1].0 || w[0].2 <= w[1].1, "overlap {w:?}");
            }
            for (arena, _, end) in &spans {
                assert!(*end <= layout.arena_lens[*arena] && layout.arena_lens[*arena] <= cap);
            }
            // Q, K, V weights back to back; unpacked parameters aligned.
            for spec_ in &specs {
                let slot = layout.slot(&spec_.name).unwrap();
                if !spec_.packed {
                    assert_eq!(slot.offset % ALIGN_ELEMENTS, 0, "{}", spec_.name);
                }
            }
            let q = layout
                .slot("encoder.layer.1.attention.self.query.weight")
                .unwrap();
            let k = layout
                .slot("encoder.layer.1.attention.self.key.weight")
                .unwrap();
            let v = layout
                .slot("encoder.layer.1.attention.self.value.weight")
                .unwrap();
            assert_eq!((k.offset, v.offset), (q.offset + 144, q.offset + 288));
            // Every slot lies inside a segment of its own group.
            for spec_ in &specs {
                let slot = layout.slot(&spec_.name).unwrap();
                let group = layout
                    .groups
                    .iter()
                    .find(|g| g.owner == spec_.owner && g.decay == spec_.decay)
                    .unwrap();
                assert!(group.segments.iter().any(|s| s.arena == slot.arena
                    && s.start <= slot.offset
                    && slot.offset + spec_.numel() <= s.end));
            }
            if cap == 2000 {
                assert!(
                    layout.arena_lens.len() > 1,
                    "a small cap spreads over arenas"
                );
            }
        }
        let err = ArenaLayout::plan(&specs, 100).unwrap_err().to_string();
        assert!(err.contains("one buffer binding can hold"), "{err}");
    }
}
