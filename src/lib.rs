//! taskgate: multi-task Transformer encoders trained and served with hand-written WGSL
//! compute kernels on any GPU (Vulkan, Metal, DX12, GL, and WebGPU in the browser).
//!
//! The layers, bottom first; a module imports only from the layers below it (checked on the
//! source by `tests/layers.rs`):
//! - at the bottom, [`tokenize`], [`shaders`] (the kernels' WGSL text) and the utilities
//!   [`files`] (whole-file replacement, outputs, directory locks), `fault` (test-only crash
//!   points), [`dist`] (the ranks of a data-parallel job and their collectives) and
//!   [`error`];
//! - [`config`] (plain types read from files: the model, the tasks' settings and data
//!   sources, `[train]`, and the choices they name);
//! - [`gpu`] (device, tensors, dispatch, readback, the autotuning cache);
//! - [`ops`] (one launcher per kernel, forward and backward side by side), beside
//!   [`reference`](mod@reference) (the f64 CPU implementation every kernel is tested against);
//! - [`metrics`] (metric maths on the host);
//! - [`tasks`] (one module per task kind behind one trait: labels, targets, the head's
//!   width, the loss launcher, decoding, metrics; and the model-side task spec);
//! - [`data`] (files to examples to padded batches, the task sampler);
//! - [`nn`] (layers with explicit forward/backward, the encoder, the batch on the device,
//!   parameter declaration);
//! - [`model`] (the gated multi-task model in stages, its parameter arenas and directories);
//! - `eval` (a model evaluated on a split);
//! - [`train`] (the optimizer, one step, the step loop shared by both front ends, whole runs);
//! - the front ends: [`session`] (the browser page's engine: file contents in, JSON out,
//!   every readback awaited), `bench`, and `cli` on top.

// wgpu's handles are not Send/Sync on wasm (one thread there); the Arcs that share them
// natively are still right.
#![cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]

#[cfg(not(target_arch = "wasm32"))]
pub mod bench;
#[cfg(not(target_arch = "wasm32"))]
pub mod cli;
pub mod config;
pub mod data;
pub mod dist;
pub mod error;
#[cfg(not(target_arch = "wasm32"))]
pub mod eval;
#[cfg(not(target_arch = "wasm32"))]
pub mod fault;
pub mod files;
pub mod gpu;
pub mod metrics;
pub mod model;
pub mod nn;
pub mod ops;
pub mod reference;
pub mod session;
pub mod shaders;
pub mod tasks;
pub mod tokenize;
pub mod train;
#[cfg(not(target_arch = "wasm32"))]
pub mod tune;

pub use gpu::{DType, Gpu, Tensor};
