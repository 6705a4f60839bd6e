//! Training on the GPU: the learning-rate schedule, AdamW over the parameter arenas with
//! global-norm clipping, and one training step (forward, backward, update) at a time.

pub mod chart;
pub mod checkpoint;
pub mod optimizer;
pub mod run;
pub mod schedule;
pub mod trainer;

pub use optimizer::Optimizer;
pub use schedule::{Decay, LrSchedule};
pub use trainer::{StepStats, TrainOptions, Trainer};
