//! Per-kernel timing while profiling is on, two ways:
//! - timestamps: every compute pass writes a GPU timestamp at its start and its end (needs
//!   TIMESTAMP_QUERY). Right on GPUs; on lavapipe the timestamps are taken when a pass is
//!   queued, not when its threads finish, and read far too low, so CPU adapters use:
//! - wall clock: every dispatch is submitted and waited for on its own, and timed on the
//!   host. Serializing costs little where nothing overlaps anyway (CPU adapters).
//!
//! Native only (both modes read back or block).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Result, anyhow};

use super::context::Gpu;

/// Queries per set (two per dispatch): WebGPU's maximum.
const CAPACITY: u32 = 4096;

/// GPU time of one dispatch.
#[derive(Clone, Debug)]
pub struct KernelTime {
    /// `shader::entry` of the kernel.
    pub label: String,
    pub seconds: f64,
}

/// How kernels are timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProfileMode {
    GpuTimestamps,
    WallClock,
}

pub(crate) struct Profiler {
    mode: ProfileMode,
    query_set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    staging: wgpu::Buffer,
    labels: Vec<String>,
    done: Vec<KernelTime>,
}

/// Profiling state of a device. `on` is read first and takes no lock: while profiling is off
/// (nearly always), a dispatch costs one atomic load here and nothing else.
#[derive(Default)]
pub(crate) struct ProfilerSlot {
    on: AtomicBool,
    /// `None` when off.
    state: Mutex<Option<Profiler>>,
}

impl ProfilerSlot {
    fn is_on(&self) -> bool {
        self.on.load(Ordering::Acquire)
    }
}

impl Gpu {
    /// The timing a profile uses on this adapter: GPU timestamps on GPUs that have them,
    /// the wall clock otherwise (and on CPU adapters, whose timestamps are not reliable).
    pub fn profile_mode(&self) -> ProfileMode {
        let cpu = self.adapter_info().device_type == wgpu::DeviceType::Cpu;
        if self.has_timestamps() && !cpu {
            ProfileMode::GpuTimestamps
        } else {
            ProfileMode::WallClock
        }
    }

    /// Starts timing every dispatch (see [`Gpu::profile_mode`]).
    pub fn start_profiling(&self) -> Result<ProfileMode> {
        let mode = self.profile_mode();
        self.flush()?;
        let device = self.device();
        let bytes = CAPACITY as u64 * 8;
        let count = if mode == ProfileMode::GpuTimestamps {
            CAPACITY
        } else {
            2
        };
        let profiler = Profiler {
            mode,
            query_set: device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("taskgate profiler"),
                ty: if mode == ProfileMode::GpuTimestamps {
                    wgpu::QueryType::Timestamp
                } else {
                    wgpu::QueryType::Occlusion
                },
                count,
            }),
            resolve: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("taskgate profiler resolve"),
                size: bytes,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
            staging: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("taskgate profiler staging"),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
            labels: Vec::new(),
            done: Vec::new(),
        };
        let slot = &self.inner.profiler;
        *slot.state.lock().unwrap() = Some(profiler);
        slot.on.store(true, Ordering::Release);
        Ok(mode)
    }

    /// True when dispatches are timed one by one on the host.
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn profiling_wall_clock(&self) -> bool {
        let slot = &self.inner.profiler;
        slot.is_on()
            && matches!(slot.state.lock().unwrap().as_ref(), Some(p) if p.mode == ProfileMode::WallClock)
    }

    /// Records the host-timed duration of one dispatch.
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn record_wall_time(&self, label: &str, seconds: f64) {
        let slot = &self.inner.profiler;
        if !slot.is_on() {
            return;
        }
        if let Some(p) = slot.state.lock().unwrap().as_mut() {
            p.done.push(KernelTime {
                label: label.to_string(),
                seconds,
            });
        }
    }

    /// Stops timing and returns every dispatch's GPU time since [`Gpu::start_profiling`].
    pub fn stop_profiling(&self) -> Result<Vec<KernelTime>> {
        self.drain_profiler()?;
        let slot = &self.inner.profiler;
        let profiler = slot.state.lock().unwrap().take();
        slot.on.store(false, Ordering::Release);
        Ok(profiler
            .ok_or_else(|| anyhow!("profiling was not started"))?
            .done)
    }

    /// Timestamp writes for the next pass labelled `label`, when profiling.
    pub(crate) fn profile_pass(&self, label: &str) -> Result<Option<(wgpu::QuerySet, u32)>> {
        let slot = &self.inner.profiler;
        if !slot.is_on() {
            return Ok(None);
        }
        let full = match slot.state.lock().unwrap().as_ref() {
            None => return Ok(None),
            Some(p) if p.mode == ProfileMode::WallClock => return Ok(None),
            Some(p) => p.labels.len() as u32 * 2 >= CAPACITY,
        };
        if full {
            self.drain_profiler()?;
        }
        let mut guard = slot.state.lock().unwrap();
        let Some(p) = guard.as_mut() else {
            return Ok(None);
        };
        let index = p.labels.len() as u32 * 2;
        p.labels.push(label.to_string());
        Ok(Some((p.query_set.clone(), index)))
    }

    /// Resolves the recorded timestamps and moves them to the finished list.
    fn drain_profiler(&self) -> Result<()> {
        let (query_set, resolve, staging, count) = {
            let guard = self.inner.profiler.state.lock().unwrap();
            let Some(p) = guard.as_ref() else {
                return Ok(());
            };
            (
                p.query_set.clone(),
                p.resolve.clone(),
                p.staging.clone(),
                p.labels.len() as u32 * 2,
            )
        };
        if count == 0 {
            return Ok(());
        }
        self.record(|enc| {
            enc.resolve_query_set(&query_set, 0..count, &resolve, 0);
            enc.copy_buffer_to_buffer(&resolve, 0, &staging, 0, count as u64 * 8);
        });
        self.flush()?;
        let ticks = read_ticks(self, &staging, count)?;
        let period = self.queue().get_timestamp_period() as f64 * 1e-9;
        let mut guard = self.inner.profiler.state.lock().unwrap();
        let p = guard.as_mut().expect("profiler present");
        let labels = std::mem::take(&mut p.labels);
        for (i, label) in labels.into_iter().enumerate() {
            let (start, end) = (ticks[2 * i], ticks[2 * i + 1]);
            p.done.push(KernelTime {
                label,
                seconds: end.saturating_sub(start) as f64 * period,
            });
        }
        Ok(())
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn read_ticks(gpu: &Gpu, staging: &wgpu::Buffer, count: u32) -> Result<Vec<u64>> {
    let slice = staging.slice(0..count as u64 * 8);
    let (sender, receiver) = std::sync::mpsc::channel();
    slice.map_async(wgpu::MapMode::Read, move |r| {
        let _ = sender.send(r);
    });
    gpu.device()
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| anyhow!("waiting for the GPU failed: {e}"))?;
    receiver
        .recv()
        .map_err(|_| anyhow!("the GPU dropped a readback"))?
        .map_err(|e| anyhow!("mapping timestamps failed: {e}"))?;
    let ticks = {
        let view = slice
            .get_mapped_range()
            .map_err(|e| anyhow!("reading timestamps failed: {e:?}"))?;
        bytemuck::pod_collect_to_vec(&view)
    };
    staging.unmap();
    Ok(ticks)
}

#[cfg(target_arch = "wasm32")]
fn read_ticks(_gpu: &Gpu, _staging: &wgpu::Buffer, _count: u32) -> Result<Vec<u64>> {
    anyhow::bail!("profiling is not available in the browser")
}
