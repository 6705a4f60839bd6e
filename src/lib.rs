//! taskgate: multi-task Transformer encoders trained and served with hand-written WGSL
//! compute kernels on any GPU (Vulkan, Metal, DX12, GL, and WebGPU in the browser).
//!
//! Layers: [`gpu`] (device, tensors, dispatch, readback) → [`ops`] (one launcher per kernel,
//! forward and backward side by side) → model and training (later modules). [`reference`]
//! holds the f64 CPU implementation every kernel is tested against.

pub mod cli;
pub mod gpu;
pub mod ops;
pub mod reference;
pub mod shaders;

pub use gpu::{DType, Gpu, Tensor};
