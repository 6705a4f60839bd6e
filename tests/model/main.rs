//! The gated multi-task model end to end: parity with PyTorch (fixtures made by
//! tests/reference/), a pretrained MiniLM encoder against Hugging Face, the model directory
//! round trip, and training.

#[path = "../kernels/common.rs"]
#[allow(dead_code)]
mod common;
mod decoder;
mod decoding;
mod generation_gradients;
mod minilm;
mod parity;
mod staged;
mod training;
