//! Learning rate per step: linear warmup to the peak, then constant, linear or cosine decay
//! towards 0, reached one step after the last, so that every step, the last one too, has a
//! rate above 0 (as Hugging Face's schedules count from 0: the decay is evaluated at the
//! number of steps already taken).

pub use crate::config::train::Decay;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LrSchedule {
    pub peak: f32,
    /// Steps of linear warmup.
    pub warmup: u64,
    /// Total steps (the decay reaches 0 one step later).
    pub total: u64,
    pub decay: Decay,
}

impl LrSchedule {
    /// The rate for `step`, counting from 1.
    pub fn lr(&self, step: u64) -> f32 {
        if step <= self.warmup {
            return self.peak * step as f32 / self.warmup.max(1) as f32;
        }
        let span = self.total.saturating_sub(self.warmup).max(1) as f64;
        let progress = ((step - 1 - self.warmup) as f64 / span).min(1.0);
        let factor = match self.decay {
            Decay::Constant => 1.0,
            Decay::Linear => 1.0 - progress,
            Decay::Cosine => 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
        };
        (self.peak as f64 * factor).max(0.0) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_decay() {
        let s = LrSchedule {
            peak: 1.0,
            warmup: 10,
            total: 110,
            decay: Decay::Linear,
        };
        assert_eq!(s.lr(1), 0.1);
        assert_eq!(s.lr(10), 1.0);
        assert_eq!(s.lr(11), 1.0, "the decay starts at the peak");
        assert!((s.lr(61) - 0.5).abs() < 1e-6);
        assert!(
            (s.lr(110) - 0.01).abs() < 1e-6,
            "the last step still learns"
        );
        assert_eq!(s.lr(111), 0.0);
        assert_eq!(s.lr(500), 0.0);
        let c = LrSchedule {
            decay: Decay::Cosine,
            ..s
        };
        assert!((c.lr(61) - 0.5).abs() < 1e-6);
        assert!(c.lr(11) > 0.99 && c.lr(110) > 0.0 && c.lr(110) < 0.001);
        // No warmup: the first step has the peak rate; one step: it has the peak too.
        let one = LrSchedule {
            warmup: 0,
            total: 1,
            ..s
        };
        assert_eq!(one.lr(1), 1.0);
        let k = LrSchedule {
            decay: Decay::Constant,
            warmup: 0,
            ..s
        };
        assert_eq!((k.lr(1), k.lr(1000)), (1.0, 1.0));
    }
}
