//! Launchers for `shaders/loss.wgsl`: fused softmax cross-entropy, BCE-with-logits and MSE.
//! Each produces d(logits) and every row's loss contribution in one pass; the scalar loss is
//! their sum. Labels come from the host, which validates them and computes the normalizer of
//! PyTorch's mean reduction.

use anyhow::{Result, bail};
use bytemuck::{Pod, Zeroable};

use super::{dispatch_1d, ensure_f32, reduce::sum, row_workgroup, rows_cols, to_u32};
use crate::gpu::{DType, Dispatch, Tensor};
use crate::shaders::LOSS;

const ROW_WG: u32 = 64;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct Params {
    rows: u32,
    classes: u32,
    ignore_index: i32,
    smoothing: f32,
    inv_norm: f32,
    grad_scale: f32,
    weight_total: f32,
    weight_index: u32,
}

/// A loss value and the gradient of (grad_scale times) it with respect to the logits.
pub struct LossOutput {
    /// The loss, one element.
    pub loss: Tensor,
    /// Each row's contribution to the loss, `[rows]`.
    pub row_loss: Tensor,
    pub dlogits: Tensor,
}

/// Where a task's weight lives: entry `index` of a GPU tensor of task weights, which the loss
/// kernel multiplies d(logits) by (so the weights can change every step, on the GPU or by an
/// upload, without the host waiting on anything).
#[derive(Clone, Debug)]
pub struct TaskWeight {
    pub weights: Tensor,
    pub index: usize,
}

/// What d(logits) is multiplied by: `factor`, times the task's weight when given.
#[derive(Clone, Debug)]
pub struct GradScale {
    pub factor: f32,
    pub task_weight: Option<TaskWeight>,
}

impl From<f32> for GradScale {
    fn from(factor: f32) -> Self {
        Self {
            factor,
            task_weight: None,
        }
    }
}

/// The weights tensor and index the kernel reads (a one-element 1.0 when no task weight).
fn weight_binding(gpu: &crate::gpu::Gpu, w: Option<&TaskWeight>) -> Result<(Tensor, u32)> {
    match w {
        Some(w) => {
            if w.index >= w.weights.numel() || w.weights.dtype() != DType::F32 {
                bail!(
                    "task weight {} of a {:?} tensor of {} weights",
                    w.index,
                    w.weights.dtype(),
                    w.weights.numel()
                );
            }
            Ok((w.weights.clone(), to_u32("task weight index", w.index)?))
        }
        None => Ok((Tensor::from_slice(gpu, &[1.0f32], &[1])?, 0)),
    }
}

/// Options of the softmax cross-entropy, named as in PyTorch.
#[derive(Clone, Debug)]
pub struct CrossEntropyOptions {
    /// Rows whose target equals this contribute nothing (PyTorch's default is -100).
    pub ignore_index: i32,
    /// Per-class weights (`weight=` in PyTorch), or none.
    pub class_weights: Option<Vec<f32>>,
    pub label_smoothing: f32,
    /// Factor applied to d(logits) (times `task_weight` when given).
    pub grad_scale: f32,
    /// The task's weight in a GPU tensor of task weights, also applied to d(logits).
    pub task_weight: Option<TaskWeight>,
    /// The mean's denominator when these rows are one chunk of a larger set (the sum of the
    /// class weights of every labelled row of the set); by default that of these rows.
    pub normalizer: Option<f64>,
}

impl Default for CrossEntropyOptions {
    fn default() -> Self {
        Self {
            ignore_index: -100,
            class_weights: None,
            label_smoothing: 0.0,
            grad_scale: 1.0,
            task_weight: None,
            normalizer: None,
        }
    }
}

fn inverse(norm: f64) -> f32 {
    if norm > 0.0 { (1.0 / norm) as f32 } else { 0.0 }
}

/// Mean softmax cross-entropy of `logits` (`[rows, classes]`) against class `targets`.
pub fn cross_entropy(
    logits: &Tensor,
    targets: &[i32],
    opts: &CrossEntropyOptions,
) -> Result<LossOutput> {
    ensure_f32("cross-entropy logits", logits)?;
    let (rows, classes) = rows_cols("cross-entropy logits", logits)?;
    if targets.len() != rows {
        bail!(
            "cross-entropy: {} targets for {rows} rows of logits",
            targets.len()
        );
    }
    if !(0.0..=1.0).contains(&opts.label_smoothing) {
        bail!(
            "cross-entropy: label_smoothing must be in [0, 1], got {}",
            opts.label_smoothing
        );
    }
    let weights = match &opts.class_weights {
        Some(w) if w.len() != classes => {
            bail!(
                "cross-entropy: {} class weights for {classes} classes",
                w.len()
            )
        }
        Some(w) => w.clone(),
        None => vec![1.0; classes],
    };
    let mut norm = 0.0f64;
    for (row, &t) in targets.iter().enumerate() {
        if t == opts.ignore_index {
            continue;
        }
        if t < 0 || t as usize >= classes {
            bail!(
                "cross-entropy: target {t} in row {row} is not a class in 0..{classes} nor the \
                 ignore index {}",
                opts.ignore_index
            );
        }
        norm += weights[t as usize] as f64;
    }
    let gpu = logits.gpu();
    let (task_weights, weight_index) = weight_binding(gpu, opts.task_weight.as_ref())?;
    let params = Params {
        rows: to_u32("cross-entropy rows", rows)?,
        classes: to_u32("cross-entropy classes", classes)?,
        ignore_index: opts.ignore_index,
        smoothing: opts.label_smoothing,
        inv_norm: inverse(opts.normalizer.unwrap_or(norm)),
        grad_scale: opts.grad_scale,
        weight_total: weights.iter().map(|&w| w as f64).sum::<f64>() as f32,
        weight_index,
    };
    let targets_t = Tensor::from_slice(gpu, targets, &[rows])?;
    let weights_t = Tensor::from_slice(gpu, &weights, &[classes])?;
    let row_loss = Tensor::empty(gpu, &[rows], DType::F32)?;
    let dlogits = Tensor::empty(gpu, logits.shape(), DType::F32)?;
    gpu.dispatch(&Dispatch {
        shader: &LOSS,
        entry: "cross_entropy",
        defines: &[],
        overrides: &[
            ("WG", row_workgroup(classes, 32, 256) as f64),
            ("HAS_WEIGHTS", opts.class_weights.is_some() as u32 as f64),
        ],
        params: bytemuck::bytes_of(&params),
        buffers: &[
            logits,
            &targets_t,
            &weights_t,
            &row_loss,
            &dlogits,
            &task_weights,
        ],
        textures: &[],
        workgroups: gpu.grid_for(rows as u64, 1)?,
    })?;
    Ok(LossOutput {
        loss: sum(&row_loss)?,
        row_loss,
        dlogits,
    })
}

fn per_row_loss(
    entry: &'static str,
    logits: &Tensor,
    targets: &[f32],
    row_mask: &[f32],
    pos_weight: Option<&[f32]>,
    scale: GradScale,
) -> Result<LossOutput> {
    ensure_f32(entry, logits)?;
    let (rows, classes) = rows_cols(entry, logits)?;
    if targets.len() != logits.numel() {
        bail!(
            "{entry}: {} targets for logits {:?}",
            targets.len(),
            logits.shape()
        );
    }
    if row_mask.len() != rows {
        bail!("{entry}: {} mask values for {rows} rows", row_mask.len());
    }
    if let Some(row) = targets.iter().position(|t| !t.is_finite()) {
        bail!(
            "{entry}: target {} (row {}) is not finite",
            targets[row],
            row / classes.max(1)
        );
    }
    if let Some(w) = pos_weight {
        if w.len() != classes {
            bail!(
                "{entry}: {} positive weights for {classes} outputs",
                w.len()
            );
        }
        if let Some(bad) = w.iter().find(|w| !w.is_finite() || **w < 0.0) {
            bail!("{entry}: positive weight {bad} is not a finite number >= 0");
        }
    }
    let norm = row_mask.iter().map(|&m| m as f64).sum::<f64>() * classes as f64;
    let gpu = logits.gpu();
    let (task_weights, weight_index) = weight_binding(gpu, scale.task_weight.as_ref())?;
    let params = Params {
        rows: to_u32("loss rows", rows)?,
        classes: to_u32("loss outputs", classes)?,
        ignore_index: 0,
        smoothing: 0.0,
        inv_norm: inverse(norm),
        grad_scale: scale.factor,
        weight_total: 0.0,
        weight_index,
    };
    let targets_t = Tensor::from_slice(gpu, targets, logits.shape())?;
    let mask_t = Tensor::from_slice(gpu, row_mask, &[rows])?;
    let ones = vec![1.0f32; classes];
    let weights_t = Tensor::from_slice(gpu, pos_weight.unwrap_or(&ones), &[classes])?;
    let row_loss = Tensor::empty(gpu, &[rows], DType::F32)?;
    let dlogits = Tensor::empty(gpu, logits.shape(), DType::F32)?;
    let buffers = [
        logits,
        &weights_t,
        &row_loss,
        &dlogits,
        &targets_t,
        &mask_t,
        &task_weights,
    ];
    dispatch_1d(
        &LOSS,
        entry,
        ROW_WG,
        &[("HAS_WEIGHTS", pos_weight.is_some() as u32 as f64)],
        bytemuck::bytes_of(&params),
        &buffers,
        rows as u64,
    )?;
    Ok(LossOutput {
        loss: sum(&row_loss)?,
        row_loss,
        dlogits,
    })
}

/// Mean binary cross-entropy with logits over the rows whose `row_mask` is non-zero
/// (multi-label classification; `targets` in [0, 1], shaped like `logits`).
pub fn bce_with_logits(
    logits: &Tensor,
    targets: &[f32],
    row_mask: &[f32],
    grad_scale: impl Into<GradScale>,
) -> Result<LossOutput> {
    bce_with_logits_weighted(logits, targets, row_mask, None, grad_scale)
}

/// [`bce_with_logits`] with a weight on each output's positive term (`pos_weight` in
/// PyTorch: above 1 raises recall; `n_negative / n_positive` balances a rare label).
pub fn bce_with_logits_weighted(
    logits: &Tensor,
    targets: &[f32],
    row_mask: &[f32],
    pos_weight: Option<&[f32]>,
    grad_scale: impl Into<GradScale>,
) -> Result<LossOutput> {
    per_row_loss(
        "bce_with_logits",
        logits,
        targets,
        row_mask,
        pos_weight,
        grad_scale.into(),
    )
}

/// Mean squared error over the rows whose `row_mask` is non-zero (regression).
pub fn mse(
    predictions: &Tensor,
    targets: &[f32],
    row_mask: &[f32],
    grad_scale: impl Into<GradScale>,
) -> Result<LossOutput> {
    per_row_loss(
        "mse",
        predictions,
        targets,
        row_mask,
        None,
        grad_scale.into(),
    )
}
