//! taskgate: multi-task Transformer encoders trained and served with hand-written WGSL
//! compute kernels on any GPU (Vulkan, Metal, DX12, GL, and WebGPU in the browser).
//!
//! Layers: [`gpu`] (device, tensors, dispatch, readback) → [`ops`] (one launcher per kernel,
//! forward and backward side by side) → [`nn`] (layers with explicit forward/backward) →
//! [`model`] (the gated multi-task model, its parameters and directories). [`config`],
//! [`tokenize`] and [`data`] turn files into batches. [`reference`] holds the f64 CPU
//! implementation every kernel is tested against.

pub mod bench;
pub mod cli;
pub mod config;
pub mod data;
pub mod eval;
pub mod gpu;
pub mod metrics;
pub mod model;
pub mod nn;
pub mod ops;
pub mod reference;
pub mod shaders;
pub mod tokenize;
pub mod train;

pub use gpu::{DType, Gpu, Tensor};
