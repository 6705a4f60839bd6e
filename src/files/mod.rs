//! Files written by commands, safely (native only): outputs that never replace an input and
//! appear only when complete ([`output`]), and an advisory lock on a directory that one
//! process at a time may write ([`lock`]).

pub mod lock;
pub mod output;

pub use lock::DirLock;
pub use output::{Output, refuse_input};
