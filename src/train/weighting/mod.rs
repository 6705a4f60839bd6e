//! The multi-task weighting of a training step (`[train] weighting`), on the host.
//!
//! A step over every task (`mixing = "all_tasks"`) trains batch k on task k. A [`Weighter`]
//! says how the tasks combine:
//! - [`StepPlan::Fixed`] (`static`) and [`StepPlan::Weights`]: task weights known before the
//!   step (`equal`, `rlw`, `dwa`, `uncertainty`). They go into the model's task-weight tensor and scale each task's
//!   d(logits) inside its loss kernel: one backward per batch into one gradient set, no
//!   extra pass. `uncertainty` and `dwa` then read the step's losses ([`Weighter::observe`]).
//! - [`StepPlan::WeightsFromLosses`] (`famo`): weights from the step's own losses. Every
//!   batch's forward and losses first, the losses read back, [`Weighter::combine`] gives the
//!   weights, then each batch's losses again (tiny kernels) with its weight and its backward.
//! - [`StepPlan::TaskGradients`]: each batch's backward goes into its own gradient set; the
//!   host reads the losses and the Gram matrix of the tasks' encoder gradients,
//!   [`Weighter::combine`] returns coefficients, and the step's gradient is `sum_k a_k g_k` on
//!   the encoder (`gradnorm`, `pcgrad`, `cagrad`, `mgda`, `imtl`); each head keeps its own
//!   task's gradient, as in LibMTL.
//!
//! The state of `uncertainty`, `dwa`, `famo` and `gradnorm` ([`WeightingState`]) goes into
//! every checkpoint's `state.json`; random draws (`rlw`, `pcgrad`'s task orders) come from
//! the step number and the seed, so a resumed run repeats them exactly.

pub mod methods;
pub mod solvers;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::config::weighting::{
    CagradOptions, DwaOptions, FamoOptions, GradNormOptions, Weighting,
};
use methods::SmallAdam;
use solvers::Matrix;

/// What a step needs from the trainer.
#[derive(Clone, Debug, PartialEq)]
pub enum StepPlan {
    /// The model's task weights as they are (its tasks' `lambda`s unless set otherwise).
    Fixed,
    /// Scale task i's loss by `weights[i]`.
    Weights(Vec<f64>),
    /// Task weights computed from this step's own losses ([`Weighter::combine`] without a
    /// Gram matrix): every batch's forward first (their activations alive together), the
    /// losses read back, then each batch's backward with its weight.
    WeightsFromLosses,
    /// One gradient set per task, combined by [`Weighter::combine`] from the losses and the
    /// Gram matrix of the tasks' encoder gradients.
    TaskGradients,
}

/// The coefficients of a step's gradient: per task, on the shared encoder and on its head.
#[derive(Clone, Debug, PartialEq)]
pub struct Combination {
    pub encoder: Vec<f64>,
    pub heads: Vec<f64>,
}

/// The learned or remembered quantities of the stateful methods.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum WeightingState {
    Stateless,
    Uncertainty {
        log_var: Vec<f64>,
        adam: SmallAdam,
    },
    Dwa {
        /// Sums of each task's losses over the current period, and its steps so far.
        sums: Vec<f64>,
        steps: u64,
        /// Average losses of the last two complete periods (newest last).
        history: Vec<Vec<f64>>,
    },
    Famo {
        logits: Vec<f64>,
        adam: SmallAdam,
        /// The previous step's losses (the update compares them with this step's).
        previous: Option<Vec<f64>>,
    },
    Gradnorm {
        scale_logits: Vec<f64>,
        adam: SmallAdam,
        /// The losses of the first step (L(0)).
        initial: Option<Vec<f64>>,
    },
}

/// One run's weighting: the method, its options and its state.
#[derive(Clone, Debug)]
pub struct Weighter {
    pub method: Weighting,
    tasks: usize,
    seed: u64,
    dwa: DwaOptions,
    /// DWA's averaging period in steps (the option, or one sampler epoch).
    dwa_period: u64,
    famo: FamoOptions,
    gradnorm: GradNormOptions,
    cagrad: CagradOptions,
    pub state: WeightingState,
}

/// A 64-bit mix (splitmix64's finaliser) for the seeded draws.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A uniform draw in (0, 1) from `key`.
fn uniform(key: u64) -> f64 {
    ((mix(key) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

/// `n` standard normal draws for `(seed, step)` (Box-Muller).
pub fn normals(seed: u64, step: u64, n: usize) -> Vec<f64> {
    let base = mix(seed ^ mix(step ^ 0x524C_5700));
    (0..n)
        .map(|i| {
            let u1 = uniform(base.wrapping_add(2 * i as u64));
            let u2 = uniform(base.wrapping_add(2 * i as u64 + 1));
            (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
        })
        .collect()
}

/// A random order of `0..n` per task for `(seed, step)` (Fisher-Yates), as PCGrad shuffles.
pub fn task_orders(seed: u64, step: u64, n: usize) -> Vec<Vec<usize>> {
    (0..n)
        .map(|task| {
            let base = mix(seed ^ mix(step ^ 0x5043_0000 ^ ((task as u64) << 32)));
            let mut order: Vec<usize> = (0..n).collect();
            for i in (1..n).rev() {
                let j = (mix(base.wrapping_add(i as u64)) % (i as u64 + 1)) as usize;
                order.swap(i, j);
            }
            order
        })
        .collect()
}

impl Weighter {
    /// The weighting `train` configures for `tasks` tasks (`static` leaves the model's task
    /// weights, its lambdas, as they are); one sampler epoch is `steps_per_epoch` steps
    /// (DWA's default period).
    pub fn new(train: &TrainConfig, tasks: usize, steps_per_epoch: u64) -> Self {
        let k = tasks;
        let dwa = train.dwa.unwrap_or_default();
        let state = match train.weighting {
            Weighting::Uncertainty => WeightingState::Uncertainty {
                log_var: vec![-0.5; k],
                adam: SmallAdam::new(k),
            },
            Weighting::Dwa => WeightingState::Dwa {
                sums: vec![0.0; k],
                steps: 0,
                history: Vec::new(),
            },
            Weighting::Famo => WeightingState::Famo {
                logits: vec![0.0; k],
                adam: SmallAdam::new(k),
                previous: None,
            },
            Weighting::Gradnorm => WeightingState::Gradnorm {
                scale_logits: vec![0.0; k],
                adam: SmallAdam::new(k),
                initial: None,
            },
            _ => WeightingState::Stateless,
        };
        Self {
            method: train.weighting,
            tasks,
            seed: train.seed,
            dwa,
            dwa_period: if dwa.period > 0 {
                dwa.period
            } else {
                steps_per_epoch.max(1)
            },
            famo: train.famo.unwrap_or_default(),
            gradnorm: train.gradnorm.unwrap_or_default(),
            cagrad: train.cagrad.unwrap_or_default(),
            state,
        }
    }

    /// Continues from a checkpoint's state (which must be this method's, for as many tasks).
    pub fn restore(&mut self, state: WeightingState) -> Result<()> {
        if std::mem::discriminant(&state) != std::mem::discriminant(&self.state) {
            bail!(
                "it holds the state of another weighting method than [train] weighting = \
                 \"{}\"",
                self.method.name()
            );
        }
        let k = self.tasks;
        let lengths_ok = match &state {
            WeightingState::Stateless => true,
            WeightingState::Uncertainty { log_var, adam } => log_var.len() == k && adam.is_for(k),
            WeightingState::Dwa { sums, history, .. } => {
                sums.len() == k && history.iter().all(|h| h.len() == k)
            }
            WeightingState::Famo {
                logits,
                adam,
                previous,
            } => {
                logits.len() == k
                    && adam.is_for(k)
                    && previous.as_ref().is_none_or(|p| p.len() == k)
            }
            WeightingState::Gradnorm {
                scale_logits,
                adam,
                initial,
            } => {
                scale_logits.len() == k
                    && adam.is_for(k)
                    && initial.as_ref().is_none_or(|p| p.len() == k)
            }
        };
        if !lengths_ok {
            bail!("its weighting state is not for {k} tasks");
        }
        self.state = state;
        Ok(())
    }

    /// What step `step` (counted from 1) needs.
    pub fn plan(&self, step: u64) -> StepPlan {
        let k = self.tasks;
        match (self.method, &self.state) {
            (Weighting::Static, _) => StepPlan::Fixed,
            (Weighting::Equal, _) => StepPlan::Weights(vec![1.0; k]),
            (Weighting::Rlw, _) => StepPlan::Weights(methods::rlw(&normals(self.seed, step, k))),
            (Weighting::Dwa, WeightingState::Dwa { history, .. }) if history.len() == 2 => {
                StepPlan::Weights(methods::dwa(&history[1], &history[0], self.dwa.temperature))
            }
            (Weighting::Dwa, _) => StepPlan::Weights(vec![1.0; k]),
            (Weighting::Uncertainty, WeightingState::Uncertainty { log_var, .. }) => {
                StepPlan::Weights(methods::uncertainty_weights(log_var))
            }
            (Weighting::Uncertainty, _) => unreachable!("uncertainty keeps its state"),
            (Weighting::Famo, _) => StepPlan::WeightsFromLosses,
            _ => StepPlan::TaskGradients,
        }
    }

    /// True when [`Weighter::observe`] needs each step's losses.
    pub fn observes_losses(&self) -> bool {
        matches!(
            self.state,
            WeightingState::Uncertainty { .. } | WeightingState::Dwa { .. }
        )
    }

    /// After a [`StepPlan::Weights`] step: its per-task losses, and the learning rate of the
    /// step (uncertainty's log-variances learn at the model's rate, as in LibMTL where they
    /// share its optimizer).
    pub fn observe(&mut self, losses: &[f64], lr: f64) {
        let period = self.dwa_period;
        match &mut self.state {
            WeightingState::Uncertainty { log_var, adam } => {
                let grad = methods::uncertainty_gradient(log_var, losses);
                adam.step(log_var, &grad, lr, 0.0);
            }
            WeightingState::Dwa {
                sums,
                steps,
                history,
            } => {
                sums.iter_mut().zip(losses).for_each(|(s, l)| *s += l);
                *steps += 1;
                if *steps == period {
                    history.push(sums.iter().map(|s| s / period as f64).collect());
                    if history.len() > 2 {
                        history.remove(0);
                    }
                    sums.iter_mut().for_each(|s| *s = 0.0);
                    *steps = 0;
                }
            }
            _ => {}
        }
    }

    /// Mid-step, for [`StepPlan::WeightsFromLosses`] and [`StepPlan::TaskGradients`]: the
    /// coefficients of each task's loss or gradient from the step's losses and (gradient
    /// methods) the Gram matrix of the tasks' encoder gradients; updates the method's state
    /// (`lr`: the step's learning rate).
    pub fn combine(
        &mut self,
        step: u64,
        losses: &[f64],
        gram: Option<&Matrix>,
        lr: f64,
    ) -> Result<Combination> {
        let k = self.tasks;
        let ones = vec![1.0; k];
        let need_gram = || -> Result<&Matrix> {
            gram.ok_or_else(|| anyhow::anyhow!("weighting needs the tasks' Gram matrix"))
        };
        let encoder = match (self.method, &mut self.state) {
            (
                Weighting::Famo,
                WeightingState::Famo {
                    logits,
                    adam,
                    previous,
                },
            ) => {
                let min = vec![0.0; k];
                // The update for the previous step, with this step's losses as the "after"
                // losses (no second forward pass: see README).
                if let Some(before) = previous.take() {
                    let grad = methods::famo_gradient(logits, &before, losses, &min);
                    adam.step(logits, &grad, self.famo.lr, self.famo.weight_decay);
                }
                *previous = Some(losses.to_vec());
                let w = methods::famo_weights(logits, losses, &min);
                return Ok(Combination {
                    encoder: w.clone(),
                    heads: w,
                });
            }
            (
                Weighting::Gradnorm,
                WeightingState::Gradnorm {
                    scale_logits,
                    adam,
                    initial,
                },
            ) => {
                let initial = initial.get_or_insert_with(|| losses.to_vec());
                let (w, ds) = methods::gradnorm(
                    scale_logits,
                    need_gram()?,
                    losses,
                    initial,
                    self.gradnorm.alpha,
                );
                adam.step(scale_logits, &ds, lr, 0.0);
                w
            }
            (Weighting::Pcgrad, _) => {
                methods::pcgrad(need_gram()?, &task_orders(self.seed, step, k))
            }
            (Weighting::Cagrad, _) => {
                methods::cagrad(need_gram()?, self.cagrad.c, self.cagrad.rescale).0
            }
            (Weighting::Mgda, _) => methods::mgda(need_gram()?),
            (Weighting::Imtl, _) => methods::imtl(need_gram()?),
            (method, _) => bail!(
                "weighting \"{}\" does not combine task gradients",
                method.name()
            ),
        };
        Ok(Combination {
            encoder,
            heads: ones,
        })
    }
}

#[cfg(test)]
mod tests;
