//! Training on the GPU: the learning-rate schedule, AdamW over the parameter arenas with
//! global-norm clipping, and one training step (forward, backward, update) at a time.

#[cfg(not(target_arch = "wasm32"))]
pub mod chart;
#[cfg(not(target_arch = "wasm32"))]
pub mod checkpoint;
#[cfg(not(target_arch = "wasm32"))]
pub mod eta;
pub mod freeze;
pub mod optimizer;
#[cfg(not(target_arch = "wasm32"))]
pub mod run;
#[cfg(not(target_arch = "wasm32"))]
pub mod run_dir;
pub mod schedule;
pub mod steps;
pub mod trainer;
pub mod weighting;

pub use optimizer::Optimizer;
pub use schedule::{Decay, LrSchedule};
pub use trainer::{StepStats, TrainOptions, Trainer};
