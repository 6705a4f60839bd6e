//! Files written safely: whole-file replacement that never leaves a part ([`atomic`]), and,
//! natively, command outputs that never replace an input and appear only when complete
//! ([`output`]) and an advisory lock on a directory that one process at a time may write
//! ([`lock`]). A utility at the bottom of the layers: it uses nothing else of the crate.

pub mod atomic;
#[cfg(not(target_arch = "wasm32"))]
pub mod lock;
#[cfg(not(target_arch = "wasm32"))]
pub mod output;

pub use atomic::write_atomic;
#[cfg(not(target_arch = "wasm32"))]
pub use lock::DirLock;
#[cfg(not(target_arch = "wasm32"))]
pub use output::{Output, refuse_input};
