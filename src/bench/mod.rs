//! The benchmark harness: kernels (`bench/suite.json`, the same cases the PyTorch baseline
//! runs) and whole training steps, reported in one JSON schema that `bench compare` joins.

pub mod compare;
pub mod decode;
pub mod kernels;
pub mod report;
pub mod train;

pub use report::{BenchResult, Report};
