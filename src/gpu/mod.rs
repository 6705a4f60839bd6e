//! GPU runtime: adapter choice, device, buffer pool, pipeline cache, the dispatch helper and
//! readback. Everything above this module talks to the GPU through [`Gpu`] and [`Tensor`].

pub mod adapter;
mod context;
mod dispatch;
pub mod pipeline;
pub mod pool;
mod profiler;
mod readback;
mod tensor;
mod texture;
pub mod tune_cache;

pub use adapter::{AdapterRequest, AdapterSummary};
pub use context::{ComputeLimits, DeviceReport, Gpu, list_adapters, wanted_features};
pub use dispatch::{Dispatch, grid_1d};
pub use pool::PoolStats;
pub use profiler::{KernelTime, ProfileMode};
pub use readback::PendingRead;
pub use tensor::{DType, Element, Tensor};
pub use texture::PooledTexture;
