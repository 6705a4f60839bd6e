//! Every kernel against its f64 CPU reference on awkward shapes, every backward against
//! finite differences of the reference, the references against PyTorch where semantics are
//! subtle, and the runtime (limits, pool, readback). All tests share one GPU (lavapipe where
//! there is no GPU). Each comparison prints "worst <kernel> <shape>: max abs error ...".

mod activation;
mod adamw;
mod attention;
mod common;
mod copy;
mod decoder_attention;
mod dropout;
mod elementwise;
mod embedding;
mod gate;
mod layernorm;
mod loss;
mod matmul;
mod reduce;
mod runtime;
mod softmax;
mod tied_output;
