//! The time a run has left: its remaining steps at the rate of the steps trained so far in
//! this process, plus its remaining evaluations at their mean duration. Evaluations are kept
//! out of the step rate, so the estimate does not jump after each one (as a progress bar's
//! own estimate, which sees an evaluation as one very long step, does).

use std::time::Duration;

/// What was measured so far in this process.
#[derive(Clone, Debug, Default)]
pub struct Eta {
    steps: u64,
    step_secs: f64,
    evals: u64,
    eval_secs: f64,
}

impl Eta {
    /// `n` steps took `secs` (wall clock, evaluations excluded).
    pub fn add_steps(&mut self, n: u64, secs: f64) {
        self.steps += n;
        self.step_secs += secs;
    }

    /// An evaluation (with its checkpoint) took `secs`.
    pub fn add_eval(&mut self, secs: f64) {
        self.evals += 1;
        self.eval_secs += secs;
    }

    /// Seconds spent in evaluations so far.
    pub fn eval_secs(&self) -> f64 {
        self.eval_secs
    }

    /// The time left for `steps_left` steps and `evals_left` evaluations; `None` before any
    /// step was measured.
    pub fn remaining(&self, steps_left: u64, evals_left: u64) -> Option<Duration> {
        if self.steps == 0 {
            return None;
        }
        let per_step = self.step_secs / self.steps as f64;
        let per_eval = if self.evals > 0 {
            self.eval_secs / self.evals as f64
        } else {
            0.0
        };
        let secs = per_step * steps_left as f64 + per_eval * evals_left as f64;
        Some(Duration::from_secs_f64(secs.max(0.0)))
    }
}

/// Evaluations still to come after `step` of `total` with one every `every` steps (0: only
/// at the end), the final one included.
pub fn evals_left(step: u64, total: u64, every: u64) -> u64 {
    if step >= total {
        return 0;
    }
    let periodic = match ((total - 1).checked_div(every), step.checked_div(every)) {
        (Some(before_end), Some(done)) => before_end - done,
        _ => 0, // every = 0: only the final evaluation
    };
    periodic + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluations_do_not_count_as_steps() {
        let mut eta = Eta::default();
        assert_eq!(eta.remaining(10, 1), None);
        eta.add_steps(10, 5.0);
        assert_eq!(eta.remaining(20, 0), Some(Duration::from_secs(10)));
        eta.add_eval(30.0);
        // The next steps run at the same pace: the estimate stays near, plus the evaluations.
        eta.add_steps(10, 5.0);
        assert_eq!(eta.remaining(20, 1), Some(Duration::from_secs(40)));
        assert_eq!(evals_left(175, 700, 175), 3);
        assert_eq!(evals_left(176, 700, 175), 3);
        assert_eq!(evals_left(525, 700, 175), 1);
        assert_eq!(evals_left(699, 700, 175), 1);
        assert_eq!(evals_left(700, 700, 175), 0);
        assert_eq!(evals_left(3, 10, 0), 1);
    }
}
