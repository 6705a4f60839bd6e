//! The `taskgate` command end to end: training runs, evaluation and prediction, and what
//! happens when things go wrong (bad input, kills at any moment, two processes, outputs that
//! would overwrite inputs).

mod checkpoints;
mod common;
#[cfg(feature = "mpi")]
mod distributed;
mod export;
mod fault_injection;
mod generation;
mod inputs;
mod outputs;
mod runs;
mod transfer;
mod tune;
