//! Parameters as layers see them. A layer *declares* each of its parameters once, through a
//! [`ParamBuilder`] scoped to the layer's name prefix (as candle's `VarBuilder::pp`), and keeps
//! the [`ParamRef`] it gets back. The list the builder collects is the model's parameter list
//! (names, shapes, initialization, optimizer group), which the model layer places into arenas.
//! At run time a layer finds its tensors in an [`ArenaSet`]: the parameters themselves, or a
//! set of gradients laid out like them (the training step's, or one per task).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use anyhow::{Result, anyhow, bail};

use crate::gpu::{DType, Gpu, Tensor};

/// Which part of the model a parameter belongs to (one optimizer group per owner and decay).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Owner {
    Encoder,
    Task(usize),
}

/// How a fresh parameter is initialized (BERT's scheme: N(0, 0.02) weights, zero biases,
/// unit LayerNorm scales).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    Normal(f32),
    Zeros,
    Ones,
}

/// One parameter.
#[derive(Clone, Debug)]
pub struct ParamSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub owner: Owner,
    /// Weight decay applies (matrices and embeddings; not biases nor LayerNorm).
    pub decay: bool,
    /// Stored right after the previous parameter of its group with no padding, so that
    /// Q, K and V form one `[3d, d]` matrix (and one `[3d]` bias).
    pub packed: bool,
    pub init: Init,
}

impl ParamSpec {
    /// Elements (saturating: a size from a hand-edited file never overflows; such sizes are
    /// refused before anything is allocated).
    pub fn numel(&self) -> usize {
        self.shape.iter().fold(1usize, |n, &d| n.saturating_mul(d))
    }
}

/// A parameter of the model: its index in the declared list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamId(pub usize);

/// What a layer binds: one parameter, or a run of packed parameters viewed as one tensor
/// (Q, K and V as one `[3d, d]` matrix).
#[derive(Clone, Debug)]
pub enum ParamRef {
    One(ParamId),
    Run {
        ids: Vec<ParamId>,
        shape: Vec<usize>,
    },
}

impl ParamRef {
    /// `parts` (each one parameter, declared packed after the first) bound as one tensor.
    pub fn run(parts: &[ParamRef], shape: &[usize]) -> Self {
        let ids = parts
            .iter()
            .flat_map(|p| match p {
                ParamRef::One(id) => std::slice::from_ref(id),
                ParamRef::Run { ids, .. } => ids.as_slice(),
            })
            .copied()
            .collect();
        ParamRef::Run {
            ids,
            shape: shape.to_vec(),
        }
    }
}

/// Collects the parameters layers declare, each under the builder's prefix and owner.
#[derive(Clone)]
pub struct ParamBuilder {
    specs: Rc<RefCell<Vec<ParamSpec>>>,
    prefix: String,
    owner: Owner,
}

/// Whether weight decay applies to a parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decay {
    Yes,
    No,
}

impl ParamBuilder {
    /// An empty list, encoder-owned, with no prefix.
    pub fn new() -> Self {
        Self {
            specs: Rc::new(RefCell::new(Vec::new())),
            prefix: String::new(),
            owner: Owner::Encoder,
        }
    }

    /// The builder for `name` under this prefix (`a.b` then `pp("c")` is `a.b.c`).
    pub fn pp(&self, name: impl std::fmt::Display) -> Self {
        Self {
            prefix: self.full_name(name),
            ..self.clone()
        }
    }

    /// `name` under this builder's prefix.
    fn full_name(&self, name: impl std::fmt::Display) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    /// This builder with parameters owned by `owner`.
    pub fn owned_by(&self, owner: Owner) -> Self {
        Self {
            owner,
            ..self.clone()
        }
    }

    fn push(&self, name: &str, shape: &[usize], init: Init, decay: Decay, packed: bool) -> ParamId {
        let mut specs = self.specs.borrow_mut();
        specs.push(ParamSpec {
            name: self.full_name(name),
            shape: shape.to_vec(),
            owner: self.owner,
            decay: decay == Decay::Yes,
            packed,
            init,
        });
        ParamId(specs.len() - 1)
    }

    /// Declares the parameter `name` (under the prefix).
    pub fn param(&self, name: &str, shape: &[usize], init: Init, decay: Decay) -> ParamRef {
        ParamRef::One(self.push(name, shape, init, decay, false))
    }

    /// Declares the parameter `name`, stored right after the previous parameter of its
    /// optimizer group (so that a run of them can be bound as one tensor, [`ParamRef::run`]).
    pub fn packed_after(&self, name: &str, shape: &[usize], init: Init, decay: Decay) -> ParamRef {
        ParamRef::One(self.push(name, shape, init, decay, true))
    }

    /// Every parameter declared through this builder and the ones derived from it.
    pub fn specs(&self) -> Vec<ParamSpec> {
        self.specs.borrow().clone()
    }
}

impl Default for ParamBuilder {
    fn default() -> Self {
        Self::new()
    }
}

/// Where one parameter lives in every arena set of a layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamSlot {
    pub arena: usize,
    pub offset: usize,
    pub shape: Vec<usize>,
}

/// Arenas laid out like the model's parameters (`slots[id]` places parameter `id`): the
/// parameters themselves, or one set of gradients.
#[derive(Clone)]
pub struct ArenaSet {
    pub arenas: Vec<Tensor>,
    slots: Arc<Vec<ParamSlot>>,
}

impl ArenaSet {
    /// Arenas `arenas` (of the lengths the slots assume) placed by `slots`.
    pub fn new(arenas: Vec<Tensor>, slots: Arc<Vec<ParamSlot>>) -> Self {
        Self { arenas, slots }
    }

    /// A zeroed set laid out like `self` (a second gradient set).
    pub fn zeros_like(&self) -> Result<Self> {
        let arenas = self
            .arenas
            .iter()
            .map(|a| Tensor::zeros(a.gpu(), a.shape(), DType::F32))
            .collect::<Result<_>>()?;
        Ok(Self::new(arenas, self.slots.clone()))
    }

    pub fn gpu(&self) -> &Gpu {
        self.arenas[0].gpu()
    }

    fn slot(&self, id: ParamId) -> Result<&ParamSlot> {
        self.slots
            .get(id.0)
            .ok_or_else(|| anyhow!("no parameter {} in this layout", id.0))
    }

    /// The tensor `r` binds, as a view of its arena.
    pub fn get(&self, r: &ParamRef) -> Result<Tensor> {
        match r {
            ParamRef::One(id) => {
                let s = self.slot(*id)?;
                self.arenas[s.arena].view(s.offset, &s.shape)
            }
            ParamRef::Run { ids, shape } => {
                let head = self.slot(ids[0])?;
                let mut end = head.offset;
                for id in ids {
                    let s = self.slot(*id)?;
                    if s.arena != head.arena || s.offset != end {
                        bail!("parameters {ids:?} are not stored back to back");
                    }
                    end += s.shape.iter().product::<usize>();
                }
                self.arenas[head.arena].view(head.offset, shape)
            }
        }
    }

    /// Sets every arena to zero (recorded on the GPU; no host work).
    pub fn zero(&self) {
        for a in &self.arenas {
            a.fill_zero();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_prefixes_and_packed_runs_are_marked() {
        let root = ParamBuilder::new();
        let layer = root.pp("encoder").pp("layer.0");
        let w = layer.param("dense.weight", &[2, 3], Init::Normal(0.02), Decay::Yes);
        let parts: Vec<ParamRef> = ["q", "k", "v"]
            .iter()
            .enumerate()
            .map(|(k, p)| {
                let p = layer.pp(p);
                if k == 0 {
                    p.param("bias", &[3], Init::Zeros, Decay::No)
                } else {
                    p.packed_after("bias", &[3], Init::Zeros, Decay::No)
                }
            })
            .collect();
        let qkv = ParamRef::run(&parts, &[9]);
        let head = root.pp("tasks.t").owned_by(Owner::Task(0));
        head.param("bias", &[1], Init::Zeros, Decay::No);
        let specs = root.specs();
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "encoder.layer.0.dense.weight",
                "encoder.layer.0.q.bias",
                "encoder.layer.0.k.bias",
                "encoder.layer.0.v.bias",
                "tasks.t.bias"
            ]
        );
        assert!(matches!(w, ParamRef::One(ParamId(0))));
        assert!(
            matches!(&qkv, ParamRef::Run { ids, .. } if ids == &[ParamId(1), ParamId(2), ParamId(3)])
        );
        assert_eq!(
            specs.iter().map(|s| s.packed).collect::<Vec<_>>(),
            [false, false, true, true, false]
        );
        assert_eq!(specs[4].owner, Owner::Task(0));
        assert!(specs[0].decay && !specs[1].decay);
    }
}
