//! The gated multi-task model: its specification and parameters, the GPU model built from
//! them, model directories, pretrained BERT loading, and the parity dump.

pub mod dir;
#[cfg(not(target_arch = "wasm32"))]
pub mod dump;
pub mod export_hf;
pub mod generate;
pub mod hf;
pub mod host;
pub mod infer;
pub mod init;
pub mod multitask;
pub mod prediction_json;
pub mod size;
pub mod spec;
pub mod store;
pub mod transfer;

pub use crate::nn::DeviceBatch;
pub use crate::nn::EncoderDims;
pub use dir::ModelDir;
pub use multitask::MultiTaskModel;
pub use spec::ModelSpec;
