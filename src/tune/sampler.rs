//! Each trial's settings, a pure function of the study (its space, method and seed), the
//! trial's number and the history it is allowed to see: a resumed study draws exactly what an
//! uninterrupted one does, with no random state to save.
//!
//! - grid: the product of every setting's grid values, in an order shuffled by the seed;
//! - random: one uniform draw per setting (log-uniform with `log`), from the trial's own
//!   seeded generator;
//! - tpe: random for the first `startup` trials, then one TPE estimator per setting (the `tpe`
//!   crate, univariate as Optuna's default `TPESampler`) told the history and asked once with
//!   the trial's generator. TPE minimises, so it is told the negated objective.

use anyhow::{Result, anyhow, bail};
use rand_tpe::rngs::StdRng;
use rand_tpe::seq::SliceRandom;
use rand_tpe::{RngExt, SeedableRng};

use crate::config::tune::{Choice, Domain, Param, SearchMethod};

/// One earlier trial as the sampler sees it: its settings and objective (maximised).
pub struct Observed {
    pub values: Vec<Choice>,
    pub objective: f64,
}

/// The trial's own generator: seeded by the study's seed and the trial's number.
fn trial_rng(seed: u64, trial: usize) -> StdRng {
    let mixed = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(
        (trial as u64)
            .wrapping_add(1)
            .wrapping_mul(0xBF58_476D_1CE4_E5B9),
    );
    StdRng::seed_from_u64(mixed)
}

/// The number of grid points (the product of the settings' grid sizes).
pub fn grid_size(params: &[Param]) -> usize {
    params
        .iter()
        .map(|p| p.domain.grid().len())
        .fold(1usize, usize::saturating_mul)
}

/// Trial `trial`'s settings, one per parameter in order.
pub fn draw(
    params: &[Param],
    method: SearchMethod,
    seed: u64,
    startup: usize,
    trial: usize,
    history: &[Observed],
) -> Result<Vec<Choice>> {
    let mut rng = trial_rng(seed, trial);
    match method {
        SearchMethod::Grid => grid_point(params, seed, trial),
        SearchMethod::Random => Ok(random(params, &mut rng)),
        SearchMethod::Tpe if trial < startup || history.is_empty() => Ok(random(params, &mut rng)),
        SearchMethod::Tpe => tpe(params, history, &mut rng),
    }
}

fn random(params: &[Param], rng: &mut StdRng) -> Vec<Choice> {
    params
        .iter()
        .map(|p| p.domain.range_value(rng.random::<f64>()))
        .collect()
}

/// The `trial`-th point of the grid in the seeded order.
fn grid_point(params: &[Param], seed: u64, trial: usize) -> Result<Vec<Choice>> {
    let grids: Vec<Vec<Choice>> = params.iter().map(|p| p.domain.grid()).collect();
    let size = grid_size(params);
    if size > 1_000_000 {
        bail!("the grid has {size} points: give fewer `values` or `points`, or use random or tpe");
    }
    if trial >= size {
        bail!("the grid has {size} points; trial {trial} is past it");
    }
    let mut order: Vec<usize> = (0..size).collect();
    order.shuffle(&mut trial_rng(seed, usize::MAX));
    let mut index = order[trial];
    // Mixed radix, the last setting fastest.
    let mut values = vec![Choice::Bool(false); params.len()];
    for (slot, grid) in values.iter_mut().zip(&grids).rev() {
        *slot = grid[index % grid.len()].clone();
        index /= grid.len();
    }
    Ok(values)
}

/// A setting's TPE range and how values map into it.
struct Axis {
    range: tpe::range::Range,
    categorical: bool,
}

impl Axis {
    fn of(domain: &Domain) -> Result<Self> {
        let range = match domain {
            Domain::Values(values) => {
                return Ok(Self {
                    range: tpe::categorical_range(values.len()).map_err(|e| anyhow!("{e}"))?,
                    categorical: true,
                });
            }
            Domain::Range {
                low,
                high,
                log,
                integer,
                ..
            } => {
                let (lo, hi) = if *integer {
                    (low - 0.5, high + 0.5)
                } else {
                    (*low, *high)
                };
                if *log {
                    tpe::range(lo.max(low * 0.5).ln(), hi.ln())
                } else {
                    tpe::range(lo, hi)
                }
            }
        };
        Ok(Self {
            range: range.map_err(|e| anyhow!("{e}"))?,
            categorical: false,
        })
    }

    /// A setting's value as TPE sees it (inside the half-open range).
    fn inner(&self, domain: &Domain, value: &Choice) -> f64 {
        let x = match domain {
            Domain::Values(values) => values.iter().position(|v| v == value).unwrap_or(0) as f64,
            Domain::Range { log, .. } => {
                let v = value.as_f64().unwrap_or(f64::NAN);
                if *log { v.ln() } else { v }
            }
        };
        if self.categorical {
            return x;
        }
        let (start, end) = (self.range.start(), self.range.end());
        x.clamp(start, end - (end - start) * 1e-9)
    }

    /// The setting's value at TPE's `x`.
    fn outer(&self, domain: &Domain, x: f64) -> Choice {
        match domain {
            Domain::Values(values) => values[(x as usize).min(values.len() - 1)].clone(),
            Domain::Range {
                low,
                high,
                log,
                integer,
                ..
            } => {
                let v = if *log { x.exp() } else { x };
                let v = v.clamp(*low, *high);
                if *integer {
                    Choice::Int(v.round() as i64)
                } else {
                    Choice::Float(v)
                }
            }
        }
    }
}

fn tpe(params: &[Param], history: &[Observed], rng: &mut StdRng) -> Result<Vec<Choice>> {
    params
        .iter()
        .enumerate()
        .map(|(i, param)| {
            let axis = Axis::of(&param.domain)?;
            let mut optimizer = if axis.categorical {
                tpe::TpeOptimizer::new(tpe::histogram_estimator(), axis.range)
            } else {
                tpe::TpeOptimizer::new(tpe::parzen_estimator(), axis.range)
            };
            for seen in history {
                let x = axis.inner(&param.domain, &seen.values[i]);
                optimizer
                    .tell(x, -seen.objective)
                    .map_err(|e| anyhow!("{}: {e}", param.path))?;
            }
            let x = optimizer
                .ask(rng)
                .map_err(|e| anyhow!("{}: {e}", param.path))?;
            Ok(axis.outer(&param.domain, x))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Vec<Param> {
        vec![
            Param {
                path: "train.lr".into(),
                domain: Domain::Range {
                    low: 1e-4,
                    high: 1e-1,
                    log: true,
                    integer: false,
                    points: 4,
                },
            },
            Param {
                path: "train.batch_size".into(),
                domain: Domain::Range {
                    low: 2.0,
                    high: 9.0,
                    log: false,
                    integer: true,
                    points: 3,
                },
            },
            Param {
                path: "train.weighting".into(),
                domain: Domain::Values(vec![
                    Choice::Text("static".into()),
                    Choice::Text("famo".into()),
                ]),
            },
        ]
    }

    fn in_domain(p: &Param, v: &Choice) -> bool {
        match &p.domain {
            Domain::Values(values) => values.contains(v),
            Domain::Range {
                low, high, integer, ..
            } => {
                let x = v.as_f64().unwrap();
                (*low..=*high).contains(&x) && (!integer || matches!(v, Choice::Int(_)))
            }
        }
    }

    #[test]
    fn the_grid_is_visited_once_in_a_seeded_order() {
        let params = params();
        assert_eq!(grid_size(&params), 4 * 3 * 2);
        let all: Vec<Vec<Choice>> = (0..24)
            .map(|t| draw(&params, SearchMethod::Grid, 7, 0, t, &[]).unwrap())
            .collect();
        for (i, a) in all.iter().enumerate() {
            assert!(all[..i].iter().all(|b| b != a), "point {i} repeats");
        }
        let again: Vec<Vec<Choice>> = (0..24)
            .map(|t| draw(&params, SearchMethod::Grid, 7, 0, t, &[]).unwrap())
            .collect();
        assert_eq!(all, again);
        let other: Vec<Vec<Choice>> = (0..24)
            .map(|t| draw(&params, SearchMethod::Grid, 8, 0, t, &[]).unwrap())
            .collect();
        assert_ne!(all, other, "the seed orders the grid");
        assert!(draw(&params, SearchMethod::Grid, 7, 0, 24, &[]).is_err());
    }

    #[test]
    fn draws_stay_in_their_domains_and_depend_only_on_seed_trial_and_history() {
        let params = params();
        let mut seen: Vec<(Vec<Choice>, f64)> = Vec::new();
        for trial in 0..30 {
            let history: Vec<Observed> = seen
                .iter()
                .map(|(v, o)| Observed {
                    values: v.clone(),
                    objective: *o,
                })
                .collect();
            let a = draw(&params, SearchMethod::Tpe, 3, 5, trial, &history).unwrap();
            let b = draw(&params, SearchMethod::Tpe, 3, 5, trial, &history).unwrap();
            assert_eq!(a, b);
            for (p, v) in params.iter().zip(&a) {
                assert!(in_domain(p, v), "{}: {v:?}", p.path);
            }
            // The objective peaks at lr = 1e-2 with famo.
            let lr = a[0].as_f64().unwrap();
            let famo = a[2] == Choice::Text("famo".into());
            let objective = -(lr.log10() + 2.0).powi(2) + famo as u8 as f64;
            seen.push((a, objective));
        }
        // TPE concentrates on the better half: its later draws beat the random start.
        let mean = |r: &[(Vec<Choice>, f64)]| r.iter().map(|x| x.1).sum::<f64>() / r.len() as f64;
        assert!(
            mean(&seen[20..]) > mean(&seen[..5]),
            "{} vs {}",
            mean(&seen[20..]),
            mean(&seen[..5])
        );
        let random = draw(&params, SearchMethod::Random, 3, 0, 4, &[]).unwrap();
        for (p, v) in params.iter().zip(&random) {
            assert!(in_domain(p, v), "{}: {v:?}", p.path);
        }
    }
}
