//! Launchers for `shaders/gate.wgsl`: the task gate `y = sigmoid(a) * h` and its backward.

use anyhow::{Result, bail};
use bytemuck::{Pod, Zeroable};

use super::{dispatch_1d, ensure_f32, rows_cols, to_u32};
use crate::gpu::Tensor;
use crate::shaders::GATE;

const WG: u32 = 256;

/// How gate logits map onto the features of `h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GateShape {
    /// One logit per row, broadcast over the features (`a` is `[rows]`).
    Scalar,
    /// One logit per feature (`a` has the shape of `h`).
    Vector,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct Params {
    rows: u32,
    d: u32,
    _pad: [u32; 2],
}

struct Checked {
    params: Params,
    vector: bool,
}

fn check(a: &Tensor, h: &Tensor, shape: GateShape) -> Result<Checked> {
    ensure_f32("gate logits", a)?;
    ensure_f32("gate input", h)?;
    let (rows, d) = rows_cols("gate input", h)?;
    let expected = match shape {
        GateShape::Scalar => rows,
        GateShape::Vector => rows * d,
    };
    if a.numel() != expected {
        bail!(
            "gate: {shape:?} gate logits for input {:?} must hold {expected} values, got {:?}",
            h.shape(),
            a.shape()
        );
    }
    Ok(Checked {
        params: Params {
            rows: to_u32("gate rows", rows)?,
            d: to_u32("gate features", d)?,
            _pad: [0; 2],
        },
        vector: shape == GateShape::Vector,
    })
}

fn launch(
    entry: &'static str,
    c: &Checked,
    accumulate: bool,
    items: u64,
    buffers: &[&Tensor],
) -> Result<()> {
    let switches = [
        ("VECTOR", c.vector as u32 as f64),
        ("ACCUMULATE", accumulate as u32 as f64),
    ];
    dispatch_1d(
        &GATE,
        entry,
        WG,
        &switches,
        bytemuck::bytes_of(&c.params),
        buffers,
        items,
    )
}

/// `sigmoid(a) * h`.
pub fn gate_forward(a: &Tensor, h: &Tensor, shape: GateShape) -> Result<Tensor> {
    let c = check(a, h, shape)?;
    let y = Tensor::empty(h.gpu(), h.shape(), h.dtype())?;
    launch("gate_forward", &c, false, h.numel() as u64, &[a, h, &y])?;
    Ok(y)
}

/// Writes (or with `accumulate` adds) `sigmoid(a) * dy` into `dh`.
pub fn gate_backward_input_into(
    a: &Tensor,
    dy: &Tensor,
    shape: GateShape,
    dh: &Tensor,
    accumulate: bool,
) -> Result<()> {
    let c = check(a, dy, shape)?;
    if dh.shape() != dy.shape() {
        bail!(
            "gate backward: dh {:?} must match dy {:?}",
            dh.shape(),
            dy.shape()
        );
    }
    launch(
        "gate_backward_h",
        &c,
        accumulate,
        dy.numel() as u64,
        &[a, dy, dh],
    )
}

/// The gradient with respect to the gate logits `a`.
pub fn gate_backward_logits(
    a: &Tensor,
    h: &Tensor,
    dy: &Tensor,
    shape: GateShape,
) -> Result<Tensor> {
    let c = check(a, h, shape)?;
    if dy.shape() != h.shape() {
        bail!(
            "gate backward: dy {:?} must match h {:?}",
            dy.shape(),
            h.shape()
        );
    }
    let da = Tensor::empty(a.gpu(), a.shape(), a.dtype())?;
    let items = match shape {
        GateShape::Scalar => c.params.rows as u64,
        GateShape::Vector => h.numel() as u64,
    };
    launch("gate_backward_a", &c, false, items, &[a, h, dy, &da])?;
    Ok(da)
}

/// Both gradients of `y = sigmoid(a) * h`: `(dh, da)`.
pub fn gate_backward(
    a: &Tensor,
    h: &Tensor,
    dy: &Tensor,
    shape: GateShape,
) -> Result<(Tensor, Tensor)> {
    let dh = Tensor::empty(h.gpu(), h.shape(), h.dtype())?;
    gate_backward_input_into(a, dy, shape, &dh, false)?;
    let da = gate_backward_logits(a, h, dy, shape)?;
    Ok((dh, da))
}
