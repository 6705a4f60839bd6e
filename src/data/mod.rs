//! Examples, labels and batches on the host: JSONL lines with per-task labels, tokenized and
//! collated into padded batches with per-task targets.

pub mod batch;
pub mod jsonl;
pub mod labels;

pub use batch::{Batch, TaskTargets, collate};
pub use jsonl::{Example, read_examples};
pub use labels::Label;
