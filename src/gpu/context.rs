//! The GPU context: instance, chosen adapter, device and queue, plus the shared buffer pool,
//! pipeline cache and the encoder that collects dispatches until the next submit.
//!
//! wgpu reports validation and out-of-memory errors through a callback; we record them
//! instead of panicking and return them from the next `flush` or readback.

use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use super::adapter::{AdapterRequest, AdapterSummary, choose};
use super::pipeline::PipelineCache;
use super::pool::{BufferPool, PoolStats};

/// Optional features taskgate uses when the adapter offers them.
pub fn wanted_features() -> wgpu::Features {
    wgpu::Features::TIMESTAMP_QUERY
        | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS
        | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES
        | wgpu::Features::SHADER_F16
        | wgpu::Features::SUBGROUP
}

/// Dispatches recorded before the encoder is submitted on its own.
const MAX_PENDING_DISPATCHES: u32 = 128;

pub(crate) struct Pending {
    pub encoder: Option<wgpu::CommandEncoder>,
    pub dispatches: u32,
}

pub(crate) struct GpuInner {
    pub adapter: wgpu::Adapter,
    pub info: wgpu::AdapterInfo,
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    pub pool: Arc<BufferPool>,
    pub pipelines: PipelineCache,
    pub pending: Mutex<Pending>,
    pub profiler: super::profiler::ProfilerSlot,
    pub textures: super::texture::TexturePool,
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    pub tuning: Mutex<Option<super::tune_cache::TuneCache>>,
    pub autotune: std::sync::atomic::AtomicBool,
    /// Times the host waited for the GPU (readbacks and `wait_idle`).
    pub host_waits: std::sync::atomic::AtomicU64,
    errors: Arc<Mutex<Vec<String>>>,
}

/// A handle to one GPU device; cheap to clone, shareable across threads.
#[derive(Clone)]
pub struct Gpu {
    pub(crate) inner: Arc<GpuInner>,
}

/// Every adapter the instance sees among `backends`, for `taskgate info`. GL is probed only
/// when it is the only backend asked for, or when no other backend has an adapter: probing it
/// (EGL on Linux) is slow and noisy on machines without a display, and it ranks last anyway.
pub async fn list_adapters(backends: wgpu::Backends) -> Vec<wgpu::Adapter> {
    let modern = backends - wgpu::Backends::GL;
    if !modern.is_empty() {
        let instance = wgpu::Instance::new(instance_descriptor(modern));
        let adapters = instance.enumerate_adapters(modern).await;
        if !adapters.is_empty() || !backends.contains(wgpu::Backends::GL) {
            return adapters;
        }
    }
    let instance = wgpu::Instance::new(instance_descriptor(backends));
    instance.enumerate_adapters(backends).await
}

/// [`list_adapters`] and the index of the one `request` picks; GL is also probed when no
/// other adapter matches the request.
async fn pick_adapter(request: &AdapterRequest) -> Result<(Vec<wgpu::Adapter>, usize)> {
    let backends = request.backends()?;
    let adapters = list_adapters(backends).await;
    let infos: Vec<wgpu::AdapterInfo> = adapters.iter().map(|a| a.get_info()).collect();
    let probed_gl = infos.iter().any(|i| i.backend == wgpu::Backend::Gl);
    match choose(&infos, request) {
        Ok(index) => Ok((adapters, index)),
        Err(e) if probed_gl || !backends.contains(wgpu::Backends::GL) => Err(e),
        Err(_) => {
            let instance = wgpu::Instance::new(instance_descriptor(backends));
            let adapters = instance.enumerate_adapters(backends).await;
            let infos: Vec<wgpu::AdapterInfo> = adapters.iter().map(|a| a.get_info()).collect();
            let index = choose(&infos, request)?;
            Ok((adapters, index))
        }
    }
}

fn instance_descriptor(backends: wgpu::Backends) -> wgpu::InstanceDescriptor {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = backends;
    desc
}

impl Gpu {
    /// Opens the adapter `request` selects (see [`super::adapter`]).
    pub async fn new(request: &AdapterRequest) -> Result<Self> {
        let (adapters, index) = pick_adapter(request).await?;
        let adapter = adapters
            .into_iter()
            .nth(index)
            .expect("chosen index exists");
        Self::from_adapter(adapter).await
    }

    /// Native convenience: [`Gpu::new`] with the request from the environment, blocking.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn from_env_blocking() -> Result<Self> {
        pollster::block_on(Self::new(&AdapterRequest::from_env()))
    }

    /// Opens a device on `adapter` with all of its limits and the optional features it has.
    pub async fn from_adapter(adapter: wgpu::Adapter) -> Result<Self> {
        let info = adapter.get_info();
        let features = adapter.features() & wanted_features();
        let limits = adapter.limits();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("taskgate"),
                required_features: features,
                required_limits: limits.clone(),
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .with_context(|| format!("could not open a device on adapter '{}'", info.name))?;
        let errors: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = Arc::clone(&errors);
        device.on_uncaptured_error(Arc::new(move |error: wgpu::Error| {
            sink.lock().unwrap().push(error.to_string());
        }));
        let limits = device.limits();
        let features = device.features();
        let pool = BufferPool::new(device.clone());
        Ok(Self {
            inner: Arc::new(GpuInner {
                adapter,
                info,
                device,
                queue,
                limits,
                features,
                pool,
                pipelines: PipelineCache::default(),
                pending: Mutex::new(Pending {
                    encoder: None,
                    dispatches: 0,
                }),
                profiler: Default::default(),
                textures: Default::default(),
                tuning: Mutex::new(None),
                autotune: super::tune_cache::enabled_by_env().into(),
                host_waits: 0.into(),
                errors,
            }),
        })
    }

    pub fn device(&self) -> &wgpu::Device {
        &self.inner.device
    }

    pub fn queue(&self) -> &wgpu::Queue {
        &self.inner.queue
    }

    pub fn adapter(&self) -> &wgpu::Adapter {
        &self.inner.adapter
    }

    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.inner.info
    }

    /// True when the adapter runs on the CPU (lavapipe, SwiftShader): its buffers are host
    /// memory.
    pub fn is_cpu_adapter(&self) -> bool {
        self.inner.info.device_type == wgpu::DeviceType::Cpu
    }

    /// True when the device has subgroup operations (the subgroup matmul's requirement).
    pub fn has_subgroups(&self) -> bool {
        self.features().contains(wgpu::Features::SUBGROUP)
    }

    /// The limits granted to this device (the adapter's own).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.inner.limits
    }

    /// The optional features granted (a subset of [`wanted_features`]).
    pub fn features(&self) -> wgpu::Features {
        self.inner.features
    }

    /// True when GPU timestamps can be written around compute passes.
    pub fn has_timestamps(&self) -> bool {
        self.inner
            .features
            .contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    pub fn pool_stats(&self) -> PoolStats {
        self.inner.pool.stats()
    }

    pub fn reset_peak_memory(&self) {
        self.inner.pool.reset_peak();
    }

    /// Turns matmul autotuning on or off (see `ops::autotune` and [`super::tune_cache`]).
    pub fn set_autotune(&self, on: bool) {
        self.inner
            .autotune
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn autotune_enabled(&self) -> bool {
        self.inner
            .autotune
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many times the host has waited for the GPU so far: readbacks (blocking or not)
    /// and `wait_idle`. Training steps must not add to it (see tests/host_waits.rs).
    pub fn host_waits(&self) -> u64 {
        self.inner
            .host_waits
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn count_host_wait(&self) {
        self.inner
            .host_waits
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Number of distinct compute pipelines created so far.
    pub fn pipeline_count(&self) -> usize {
        self.inner.pipelines.len()
    }

    /// Runs `record` on the pending command encoder, creating it when needed.
    pub(crate) fn record<R>(&self, record: impl FnOnce(&mut wgpu::CommandEncoder) -> R) -> R {
        let mut pending = self.inner.pending.lock().unwrap();
        let encoder = pending.encoder.get_or_insert_with(|| {
            self.inner
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("taskgate"),
                })
        });
        record(encoder)
    }

    /// Counts one recorded dispatch; submits when many are waiting.
    pub(crate) fn note_dispatch(&self) -> Result<()> {
        let due = {
            let mut pending = self.inner.pending.lock().unwrap();
            pending.dispatches += 1;
            pending.dispatches >= MAX_PENDING_DISPATCHES
        };
        if due { self.flush() } else { Ok(()) }
    }

    /// Submits every recorded command. Returns the first device error seen since the last
    /// check, if any.
    pub fn flush(&self) -> Result<()> {
        self.flush_indexed().map(drop)
    }

    /// [`Gpu::flush`], returning the submission's index when something was submitted (what
    /// a wait for this work alone, and not for work submitted later, needs).
    pub fn flush_indexed(&self) -> Result<Option<wgpu::SubmissionIndex>> {
        let index = {
            // Submit and recycle under the lock: a buffer retired by another thread after
            // this submit may be referenced by a newer encoder and must stay retiring.
            let mut pending = self.inner.pending.lock().unwrap();
            pending.dispatches = 0;
            let index = pending
                .encoder
                .take()
                .map(|encoder| self.inner.queue.submit([encoder.finish()]));
            self.inner.pool.after_submit();
            index
        };
        self.take_error()?;
        Ok(index)
    }

    /// Blocks until the device has finished all submitted work (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn wait_idle(&self) -> Result<()> {
        self.count_host_wait();
        self.flush()?;
        self.inner
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| anyhow::anyhow!("waiting for the GPU failed: {e}"))?;
        self.take_error()
    }

    /// Returns the device errors recorded since the last call, as one error.
    pub fn take_error(&self) -> Result<()> {
        let errors = std::mem::take(&mut *self.inner.errors.lock().unwrap());
        if errors.is_empty() {
            return Ok(());
        }
        bail!("GPU error: {}", errors.join("\n"))
    }

    /// A serializable description of this device, for `taskgate info`.
    pub fn report(&self) -> DeviceReport {
        DeviceReport::new(&self.inner.info, &self.inner.limits, self.inner.features)
    }
}

/// The limits that matter to compute kernels.
#[derive(Clone, Debug, Serialize)]
pub struct ComputeLimits {
    pub max_buffer_size: u64,
    pub max_storage_buffer_binding_size: u64,
    pub max_uniform_buffer_binding_size: u64,
    pub max_storage_buffers_per_shader_stage: u32,
    pub max_bindings_per_bind_group: u32,
    pub max_compute_workgroup_storage_size: u32,
    pub max_compute_invocations_per_workgroup: u32,
    pub max_compute_workgroup_size_x: u32,
    pub max_compute_workgroup_size_y: u32,
    pub max_compute_workgroup_size_z: u32,
    pub max_compute_workgroups_per_dimension: u32,
    pub max_texture_dimension_2d: u32,
    pub min_storage_buffer_offset_alignment: u32,
    pub min_uniform_buffer_offset_alignment: u32,
}

impl From<&wgpu::Limits> for ComputeLimits {
    fn from(l: &wgpu::Limits) -> Self {
        Self {
            max_buffer_size: l.max_buffer_size,
            max_storage_buffer_binding_size: l.max_storage_buffer_binding_size,
            max_uniform_buffer_binding_size: l.max_uniform_buffer_binding_size,
            max_storage_buffers_per_shader_stage: l.max_storage_buffers_per_shader_stage,
            max_bindings_per_bind_group: l.max_bindings_per_bind_group,
            max_compute_workgroup_storage_size: l.max_compute_workgroup_storage_size,
            max_compute_invocations_per_workgroup: l.max_compute_invocations_per_workgroup,
            max_compute_workgroup_size_x: l.max_compute_workgroup_size_x,
            max_compute_workgroup_size_y: l.max_compute_workgroup_size_y,
            max_compute_workgroup_size_z: l.max_compute_workgroup_size_z,
            max_compute_workgroups_per_dimension: l.max_compute_workgroups_per_dimension,
            max_texture_dimension_2d: l.max_texture_dimension_2d,
            min_storage_buffer_offset_alignment: l.min_storage_buffer_offset_alignment,
            min_uniform_buffer_offset_alignment: l.min_uniform_buffer_offset_alignment,
        }
    }
}

/// Adapter, limits and features of an opened device.
#[derive(Clone, Debug, Serialize)]
pub struct DeviceReport {
    pub adapter: AdapterSummary,
    pub subgroup_size: [u32; 2],
    pub limits: ComputeLimits,
    /// Optional features taskgate asked for and got.
    pub features: Vec<String>,
    /// Optional features taskgate would use but this adapter lacks.
    pub missing_features: Vec<String>,
}

impl DeviceReport {
    pub fn new(info: &wgpu::AdapterInfo, limits: &wgpu::Limits, features: wgpu::Features) -> Self {
        let names = |set: wgpu::Features| -> Vec<String> {
            set.iter_names().map(|(name, _)| name.to_string()).collect()
        };
        Self {
            adapter: AdapterSummary::of(info),
            subgroup_size: [info.subgroup_min_size, info.subgroup_max_size],
            limits: limits.into(),
            features: names(features & wanted_features()),
            missing_features: names(wanted_features() - features),
        }
    }
}
