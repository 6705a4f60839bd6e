//! Which examples make each training step's batch.
//!
//! Every batch holds examples of one task (as the reference design trains). With `mixing =
//! "one_task"` a step has one batch, whose task is drawn by the task sampler (`proportional`,
//! `temperature` or `round_robin`) from a random stream seeded by (seed, s); with
//! `mixing = "all_tasks"` a step has one batch of every task with examples, in task order. Each
//! task walks through its examples epoch after
//! epoch in an order seeded by (seed, task, epoch): shuffled, then length-bucketed (chunks of
//! 50 batches sorted by length, so a batch pads little) and the batches shuffled again. The
//! whole state is therefore a few counters ([`SamplerState`]), which checkpoints store, and a
//! resumed run draws exactly the batches the uninterrupted run would have drawn.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config::{Mixing, SamplerKind};

/// Batches per length bucket.
const BUCKET_BATCHES: usize = 50;

/// Where each task is in its epochs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamplerState {
    /// Steps drawn so far.
    pub step: u64,
    /// Per task: the current epoch and the next batch within it.
    pub epoch: Vec<u64>,
    pub cursor: Vec<usize>,
}

pub struct Sampler {
    kind: SamplerKind,
    mixing: Mixing,
    seed: u64,
    batch_size: usize,
    /// Per task: the token length of each training example.
    lengths: Vec<Vec<usize>>,
    probabilities: Vec<f64>,
    /// Per task: the batches of its current epoch.
    epoch_batches: Vec<Vec<Vec<usize>>>,
    pub state: SamplerState,
}

fn mix(seed: u64, a: u64, b: u64) -> u64 {
    let mut x =
        seed ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    x ^= x >> 31;
    x.wrapping_mul(0xBF58_476D_1CE4_E5B9)
}

impl Sampler {
    /// `lengths[i]`: token counts of task i's training examples (empty: the task is not
    /// trained, e.g. `--only` another task).
    pub fn new(
        kind: SamplerKind,
        temperature: f64,
        seed: u64,
        batch_size: usize,
        lengths: Vec<Vec<usize>>,
    ) -> Self {
        let weights: Vec<f64> = lengths
            .iter()
            .map(|l| match (l.len(), kind) {
                (0, _) => 0.0,
                (n, SamplerKind::Temperature) => (n as f64).powf(1.0 / temperature),
                (n, _) => n as f64,
            })
            .collect();
        let total: f64 = weights.iter().sum();
        let tasks = lengths.len();
        let mut sampler = Self {
            kind,
            mixing: Mixing::OneTask,
            seed,
            batch_size,
            lengths,
            probabilities: weights
                .iter()
                .map(|w| w / total.max(f64::MIN_POSITIVE))
                .collect(),
            epoch_batches: vec![Vec::new(); tasks],
            state: SamplerState {
                step: 0,
                epoch: vec![0; tasks],
                cursor: vec![0; tasks],
            },
        };
        for t in 0..tasks {
            sampler.epoch_batches[t] = sampler.plan_epoch(t, 0);
        }
        sampler
    }

    /// This sampler drawing its steps as `mixing` says (one task per step by default).
    pub fn with_mixing(mut self, mixing: Mixing) -> Self {
        self.mixing = mixing;
        self
    }

    /// What one step draws.
    pub fn mixing(&self) -> Mixing {
        self.mixing
    }

    /// Continues from a checkpoint's state.
    pub fn restore(&mut self, state: SamplerState) -> anyhow::Result<()> {
        if state.epoch.len() != self.lengths.len() || state.cursor.len() != self.lengths.len() {
            anyhow::bail!(
                "the checkpoint's sampler state is for {} task(s), the config has {}",
                state.epoch.len(),
                self.lengths.len()
            );
        }
        for t in 0..self.lengths.len() {
            self.epoch_batches[t] = self.plan_epoch(t, state.epoch[t]);
        }
        self.state = state;
        Ok(())
    }

    /// The sampling probability of each task.
    pub fn probabilities(&self) -> &[f64] {
        &self.probabilities
    }

    /// Steps in one pass over every task's training examples: all their batches with one task
    /// per step; the largest task's batches with all tasks per step (the smaller tasks start
    /// their next epochs meanwhile).
    pub fn batches_per_epoch(&self) -> u64 {
        let batches = self
            .lengths
            .iter()
            .map(|l| l.len().div_ceil(self.batch_size) as u64);
        match self.mixing {
            Mixing::OneTask => batches.sum(),
            Mixing::AllTasks => batches.max().unwrap_or(0),
        }
    }

    /// The batches of the next step, `(task, example indices)` each: one, or one per task
    /// with examples (see [`Mixing`]).
    pub fn next_step(&mut self) -> Vec<(usize, Vec<usize>)> {
        match self.mixing {
            Mixing::OneTask => vec![self.next_batch()],
            Mixing::AllTasks => {
                self.state.step += 1;
                let active: Vec<usize> = (0..self.lengths.len())
                    .filter(|&t| !self.lengths[t].is_empty())
                    .collect();
                active
                    .into_iter()
                    .map(|t| (t, self.take_batch(t)))
                    .collect()
            }
        }
    }

    /// The batch order of task `t` in epoch `epoch`.
    fn plan_epoch(&self, t: usize, epoch: u64) -> Vec<Vec<usize>> {
        let lengths = &self.lengths[t];
        let mut rng = ChaCha8Rng::seed_from_u64(mix(self.seed, 1 + t as u64, epoch));
        let mut order: Vec<usize> = (0..lengths.len()).collect();
        order.shuffle(&mut rng);
        let mut batches = Vec::new();
        for chunk in order.chunks_mut(self.batch_size * BUCKET_BATCHES) {
            chunk.sort_by_key(|&i| lengths[i]);
            batches.extend(chunk.chunks(self.batch_size).map(<[usize]>::to_vec));
        }
        batches.shuffle(&mut rng);
        batches
    }

    /// The task of the next step and the indices of its examples.
    pub fn next_batch(&mut self) -> (usize, Vec<usize>) {
        let step = self.state.step;
        self.state.step += 1;
        let task = match self.kind {
            SamplerKind::RoundRobin => {
                let active: Vec<usize> = (0..self.lengths.len())
                    .filter(|&t| !self.lengths[t].is_empty())
                    .collect();
                active[(step % active.len() as u64) as usize]
            }
            _ => {
                let mut rng = ChaCha8Rng::seed_from_u64(mix(self.seed, 0, step));
                let mut u: f64 = rng.random();
                let mut chosen = self
                    .probabilities
                    .iter()
                    .rposition(|&p| p > 0.0)
                    .unwrap_or(0);
                for (t, &p) in self.probabilities.iter().enumerate() {
                    if p > 0.0 && u < p {
                        chosen = t;
                        break;
                    }
                    u -= p;
                }
                chosen
            }
        };
        (task, self.take_batch(task))
    }

    /// Task `task`'s next batch (a new epoch's order once the current one is used up).
    fn take_batch(&mut self, task: usize) -> Vec<usize> {
        if self.state.cursor[task] >= self.epoch_batches[task].len() {
            self.state.epoch[task] += 1;
            self.state.cursor[task] = 0;
            self.epoch_batches[task] = self.plan_epoch(task, self.state.epoch[task]);
        }
        let batch = self.epoch_batches[task][self.state.cursor[task]].clone();
        self.state.cursor[task] += 1;
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lengths(sizes: &[usize]) -> Vec<Vec<usize>> {
        sizes
            .iter()
            .map(|&n| (0..n).map(|i| 3 + (i * 7) % 40).collect())
            .collect()
    }

    #[test]
    fn epochs_cover_every_example_once_in_length_buckets() {
        let mut s = Sampler::new(SamplerKind::RoundRobin, 1.0, 7, 4, lengths(&[10, 0, 23]));
        let mut seen = vec![Vec::new(); 3];
        for _ in 0..(3 + 6) * 2 {
            let (t, b) = s.next_batch();
            assert!(t != 1, "a task without examples is never drawn");
            assert!(b.len() <= 4 && !b.is_empty());
            seen[t].extend(b);
        }
        for (t, n) in [(0, 10), (2, 23)] {
            let mut first: Vec<usize> = seen[t][..n].to_vec();
            first.sort();
            assert_eq!(
                first,
                (0..n).collect::<Vec<_>>(),
                "task {t}: one epoch = each example once"
            );
        }
    }

    #[test]
    fn sampler_probabilities_follow_the_formula() {
        let s = Sampler::new(SamplerKind::Temperature, 2.0, 0, 8, lengths(&[100, 400]));
        let p = s.probabilities();
        assert!((p[0] - 10.0 / 30.0).abs() < 1e-12 && (p[1] - 20.0 / 30.0).abs() < 1e-12);
        let mut s = Sampler::new(SamplerKind::Proportional, 1.0, 3, 8, lengths(&[100, 400]));
        let draws = (0..4000).filter(|_| s.next_batch().0 == 1).count();
        assert!((draws as f64 / 4000.0 - 0.8).abs() < 0.03, "{draws}");
    }

    #[test]
    fn all_tasks_steps_draw_one_batch_of_every_task_and_resume_exactly() {
        let new = || {
            Sampler::new(SamplerKind::Temperature, 2.0, 5, 3, lengths(&[17, 0, 30]))
                .with_mixing(Mixing::AllTasks)
        };
        let mut a = new();
        assert_eq!(a.batches_per_epoch(), 10, "the largest task's batches");
        let mut seen = vec![Vec::new(); 3];
        for _ in 0..10 {
            let step = a.next_step();
            assert_eq!(step.iter().map(|(t, _)| *t).collect::<Vec<_>>(), [0, 2]);
            for (t, b) in step {
                seen[t].extend(b);
            }
        }
        let mut all: Vec<usize> = seen[2].clone();
        all.sort();
        assert_eq!(
            all,
            (0..30).collect::<Vec<_>>(),
            "one epoch of the largest task"
        );
        let mut b = new();
        b.restore(a.state.clone()).unwrap();
        for _ in 0..15 {
            assert_eq!(a.next_step(), b.next_step());
        }
    }

    #[test]
    fn a_restored_sampler_continues_exactly() {
        let mut a = Sampler::new(SamplerKind::Temperature, 2.0, 5, 3, lengths(&[17, 9, 30]));
        for _ in 0..25 {
            a.next_batch();
        }
        let mut b = Sampler::new(SamplerKind::Temperature, 2.0, 5, 3, lengths(&[17, 9, 30]));
        b.restore(a.state.clone()).unwrap();
        for _ in 0..40 {
            assert_eq!(a.next_batch(), b.next_batch());
        }
    }
}
