//! Examples, labels and batches on the host: task data files in several formats, JSONL lines
//! with per-task labels, tokenized and collated into padded batches with per-task targets,
//! and the sampler that picks each training step's task and examples.

pub mod batch;
pub mod formats;
pub mod jsonl;
pub mod sampler;
pub mod splits;
pub mod targets;

pub use crate::tasks::Label;
pub use batch::{Batch, TaskTargets, collate, collate_padded};
pub use jsonl::{Example, read_examples};
