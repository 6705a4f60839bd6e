//! `[train] weighting`: how a step over every task (`mixing = "all_tasks"`) combines the
//! tasks' losses or gradients, and the option tables of the methods that have options
//! (`[train.dwa]`, `[train.famo]`, `[train.gradnorm]`, `[train.cagrad]`). A table of a method
//! other than the one chosen is an error, not silently ignored. `train::weighting` carries
//! the methods out.

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use super::TrainConfig;

/// A multi-task weighting method (the papers each follows: README, "Multi-task weighting").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Weighting {
    /// The tasks' `lambda`s, fixed.
    #[default]
    Static,
    /// Every task weight 1.
    Equal,
    /// Kendall et al. 2018: learned log-variances.
    Uncertainty,
    /// Liu et al. 2019: weights from the tasks' recent loss ratios.
    Dwa,
    /// Lin et al. 2022: random weights each step.
    Rlw,
    /// Liu et al. 2023: fast adaptive multitask optimization.
    Famo,
    /// Chen et al. 2018: learned weights balancing the gradient norms.
    Gradnorm,
    /// Yu et al. 2020: conflicting gradients projected apart.
    Pcgrad,
    /// Liu et al. 2021: conflict-averse gradient descent.
    Cagrad,
    /// Sener and Koltun 2018: the min-norm point of the tasks' gradients.
    Mgda,
    /// Liu et al. 2021: IMTL-G, equal projections of the step on every task gradient.
    Imtl,
}

impl Weighting {
    pub const ALL: [Weighting; 11] = [
        Weighting::Static,
        Weighting::Equal,
        Weighting::Uncertainty,
        Weighting::Dwa,
        Weighting::Rlw,
        Weighting::Famo,
        Weighting::Gradnorm,
        Weighting::Pcgrad,
        Weighting::Cagrad,
        Weighting::Mgda,
        Weighting::Imtl,
    ];

    /// The name in a config file.
    pub fn name(self) -> &'static str {
        match self {
            Weighting::Static => "static",
            Weighting::Equal => "equal",
            Weighting::Uncertainty => "uncertainty",
            Weighting::Dwa => "dwa",
            Weighting::Rlw => "rlw",
            Weighting::Famo => "famo",
            Weighting::Gradnorm => "gradnorm",
            Weighting::Pcgrad => "pcgrad",
            Weighting::Cagrad => "cagrad",
            Weighting::Mgda => "mgda",
            Weighting::Imtl => "imtl",
        }
    }

    /// Works on every task's gradient of the shared encoder (one gradient set per task).
    pub fn uses_task_gradients(self) -> bool {
        matches!(
            self,
            Weighting::Gradnorm
                | Weighting::Pcgrad
                | Weighting::Cagrad
                | Weighting::Mgda
                | Weighting::Imtl
        )
    }

    /// Combines several tasks in one step: needs `mixing = "all_tasks"` and two tasks or more.
    pub fn combines_tasks(self) -> bool {
        !matches!(self, Weighting::Static | Weighting::Equal)
    }

    /// True when the task weights of a step are known before it (from the step number and
    /// earlier steps' losses): what data-parallel training supports.
    pub fn weights_before_step(self) -> bool {
        matches!(
            self,
            Weighting::Static
                | Weighting::Equal
                | Weighting::Rlw
                | Weighting::Dwa
                | Weighting::Uncertainty
        )
    }
}

/// `[train.dwa]`.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DwaOptions {
    /// T of the softmax over the loss ratios.
    #[serde(default = "two")]
    pub temperature: f64,
    /// Steps over which a task's loss is averaged (the paper's and LibMTL's epoch; 0: one
    /// epoch of the sampler).
    #[serde(default)]
    pub period: u64,
}

/// `[train.famo]`.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FamoOptions {
    /// Learning rate of the weight logits (Adam).
    #[serde(default = "famo_lr")]
    pub lr: f64,
    /// Weight decay of the weight logits (Adam's, added to their gradient).
    #[serde(default = "famo_decay")]
    pub weight_decay: f64,
}

/// `[train.gradnorm]`.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GradNormOptions {
    /// The restoring force alpha (0: equal gradient norms).
    #[serde(default = "gradnorm_alpha")]
    pub alpha: f64,
}

/// `[train.cagrad]`.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CagradOptions {
    /// c: how far from the mean gradient the step may go (0: the mean gradient).
    #[serde(default = "cagrad_c")]
    pub c: f64,
    /// The final scaling as LibMTL's `rescale`: 0 none, 1 divide by 1 + c^2, 2 by 1 + c.
    #[serde(default = "one_u8")]
    pub rescale: u8,
}

fn two() -> f64 {
    2.0
}
fn famo_lr() -> f64 {
    0.025
}
fn famo_decay() -> f64 {
    0.001
}
fn gradnorm_alpha() -> f64 {
    1.5
}
fn cagrad_c() -> f64 {
    0.4
}
fn one_u8() -> u8 {
    1
}

impl Default for DwaOptions {
    fn default() -> Self {
        Self {
            temperature: two(),
            period: 0,
        }
    }
}
impl Default for FamoOptions {
    fn default() -> Self {
        Self {
            lr: famo_lr(),
            weight_decay: famo_decay(),
        }
    }
}
impl Default for GradNormOptions {
    fn default() -> Self {
        Self {
            alpha: gradnorm_alpha(),
        }
    }
}
impl Default for CagradOptions {
    fn default() -> Self {
        Self {
            c: cagrad_c(),
            rescale: one_u8(),
        }
    }
}

/// A non-negative finite number, or an error naming `field`.
fn non_negative(field: &str, value: f64) -> Result<()> {
    if !(value.is_finite() && value >= 0.0) {
        bail!("{field} must be a number >= 0, got {value}");
    }
    Ok(())
}

/// A positive finite number, or an error naming `field`.
fn positive(field: &str, value: f64) -> Result<()> {
    if !(value.is_finite() && value > 0.0) {
        bail!("{field} must be a positive number, got {value}");
    }
    Ok(())
}

impl TrainConfig {
    /// Each weighting option table set belongs to `[train] weighting`, and its values are in
    /// range.
    pub fn validate_weighting_tables(&self) -> Result<()> {
        let method = self.weighting;
        let set = [
            (Weighting::Dwa, self.dwa.is_some()),
            (Weighting::Famo, self.famo.is_some()),
            (Weighting::Gradnorm, self.gradnorm.is_some()),
            (Weighting::Cagrad, self.cagrad.is_some()),
        ];
        for (owner, present) in set {
            if present && owner != method {
                bail!(
                    "[train.{0}] holds options of weighting \"{0}\", but [train] weighting is \
                     \"{1}\": remove the table or set weighting = \"{0}\"",
                    owner.name(),
                    method.name()
                );
            }
        }
        if let Some(o) = &self.dwa {
            positive("[train.dwa] temperature", o.temperature)?;
        }
        if let Some(o) = &self.famo {
            positive("[train.famo] lr", o.lr)?;
            non_negative("[train.famo] weight_decay", o.weight_decay)?;
        }
        if let Some(o) = &self.gradnorm {
            non_negative("[train.gradnorm] alpha", o.alpha)?;
        }
        if let Some(o) = &self.cagrad {
            non_negative("[train.cagrad] c", o.c)?;
            if o.rescale > 2 {
                bail!(
                    "[train.cagrad] rescale must be 0, 1 or 2, got {}",
                    o.rescale
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(weighting: Weighting, set: impl FnOnce(&mut TrainConfig)) -> TrainConfig {
        let mut config = TrainConfig {
            weighting,
            ..Default::default()
        };
        set(&mut config);
        config
    }

    #[test]
    fn a_table_of_another_method_is_refused() {
        let cagrad = |c: &mut TrainConfig| c.cagrad = Some(CagradOptions::default());
        let e = with(Weighting::Dwa, cagrad)
            .validate_weighting_tables()
            .unwrap_err()
            .to_string();
        assert!(e.contains("[train.cagrad]") && e.contains("\"dwa\""), "{e}");
        with(Weighting::Cagrad, cagrad)
            .validate_weighting_tables()
            .unwrap();
    }

    #[test]
    fn out_of_range_options_name_their_field() {
        let e = with(Weighting::Gradnorm, |c| {
            c.gradnorm = Some(GradNormOptions { alpha: -0.5 })
        })
        .validate_weighting_tables()
        .unwrap_err()
        .to_string();
        assert!(e.contains("[train.gradnorm] alpha"), "{e}");
        let dwa = with(Weighting::Dwa, |c| {
            c.dwa = Some(DwaOptions {
                temperature: 0.0,
                period: 0,
            })
        });
        assert!(dwa.validate_weighting_tables().is_err());
    }

    #[test]
    fn names_round_trip_through_serde() {
        for w in Weighting::ALL {
            let parsed: Weighting =
                serde::Deserialize::deserialize(toml::Value::String(w.name().into())).unwrap();
            assert_eq!(parsed, w);
        }
    }
}
