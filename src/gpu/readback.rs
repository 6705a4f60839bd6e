//! Reading tensors back to the host.
//!
//! The core is asynchronous, as the browser requires: `begin_read` records copies into
//! mappable staging buffers, submits, and asks for the maps; the returned [`PendingRead`]
//! resolves once the device has finished (on the web the browser drives this; on native
//! someone must poll the device, which the blocking wrappers do).

use anyhow::{Result, anyhow};

use super::context::Gpu;
use super::pool::{PooledBuffer, size_class};
use super::tensor::{Element, Tensor};

const STAGING_USAGE: wgpu::BufferUsages =
    wgpu::BufferUsages::MAP_READ.union(wgpu::BufferUsages::COPY_DST);

type MapResult = Result<(), wgpu::BufferAsyncError>;

/// One staged copy. Dropping it unmaps the staging buffer (cancelling a pending map), so that
/// a readback abandoned half-way never returns a mapped buffer to the pool.
struct StagedPart {
    staging: PooledBuffer,
    bytes: u64,
    receiver: futures_channel::oneshot::Receiver<MapResult>,
    /// A map was requested and the buffer has not been unmapped since.
    mapped: bool,
}

/// How long [`Gpu::block_on`] waits on an idle device for a callback another thread may be
/// delivering, before it reports the future as waiting on something else.
#[cfg(not(target_arch = "wasm32"))]
pub const IDLE_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

/// The idle polls [`Gpu::block_on`] makes, beside waiting [`IDLE_GRACE`], before it gives up.
#[cfg(not(target_arch = "wasm32"))]
const IDLE_POLLS: u32 = 200;

impl Drop for StagedPart {
    fn drop(&mut self) {
        if self.mapped {
            self.staging.buffer().unmap();
        }
    }
}

/// Copies in flight; await [`PendingRead::finish`] for the bytes.
pub struct PendingRead {
    gpu: Gpu,
    parts: Vec<StagedPart>,
    /// The submission holding the copies (waited for natively; the browser drives maps).
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    submission: Option<wgpu::SubmissionIndex>,
}

impl Gpu {
    /// Starts reading `tensors` back: records the copies, submits everything pending and
    /// requests the maps.
    pub fn begin_read(&self, tensors: &[&Tensor]) -> Result<PendingRead> {
        self.count_host_wait();
        let mut staged = Vec::with_capacity(tensors.len());
        for t in tensors {
            let bytes = t.bytes().div_ceil(4) * 4;
            let staging = self
                .inner
                .pool
                .acquire(STAGING_USAGE, bytes, size_class(bytes), false);
            if bytes > 0 {
                self.record(|enc| {
                    enc.copy_buffer_to_buffer(
                        t.buffer(),
                        t.offset_bytes(),
                        staging.buffer(),
                        0,
                        bytes,
                    )
                });
            }
            staged.push((staging, bytes));
        }
        let submission = self.flush_indexed()?;
        let mut parts = Vec::with_capacity(staged.len());
        for (staging, bytes) in staged {
            let (sender, receiver) = futures_channel::oneshot::channel();
            if bytes > 0 {
                staging
                    .buffer()
                    .slice(0..bytes)
                    .map_async(wgpu::MapMode::Read, move |result| {
                        let _ = sender.send(result);
                    });
            } else {
                let _ = sender.send(Ok(()));
            }
            parts.push(StagedPart {
                staging,
                bytes,
                receiver,
                mapped: bytes > 0,
            });
        }
        Ok(PendingRead {
            gpu: self.clone(),
            parts,
            submission,
        })
    }

    /// Reads `tensors` back, awaiting the device (never blocks; suits the browser).
    pub async fn read_bytes(&self, tensors: &[&Tensor]) -> Result<Vec<Vec<u8>>> {
        self.begin_read(tensors)?.finish().await
    }

    /// Reads f32 `tensors` back in one transfer, each as exactly its elements.
    pub async fn read_f32(&self, tensors: &[&Tensor]) -> Result<Vec<Vec<f32>>> {
        check_f32(tensors)?;
        let bytes = self.read_bytes(tensors).await?;
        Ok(cast_each(&bytes, tensors))
    }

    /// Drives `future`, which awaits this device's readbacks, to completion on this thread:
    /// whenever it waits, the device is polled until its submitted work is done, which
    /// fires the map callbacks the readbacks await (native only; the browser drives them).
    /// A future that keeps waiting while the device has nothing left to do waits on
    /// something else: that is an error, not a busy loop. Another thread polling the same
    /// device may be running this future's callback at that moment, so the device must stay
    /// idle for `IDLE_GRACE` before the wait counts as stuck.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn block_on<F: std::future::Future>(&self, future: F) -> Result<F::Output> {
        let mut future = std::pin::pin!(future);
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        let mut idle_since: Option<std::time::Instant> = None;
        let mut idle_polls = 0u32;
        loop {
            if let std::task::Poll::Ready(value) = future.as_mut().poll(&mut context) {
                return Ok(value);
            }
            let status = self
                .device()
                .poll(wgpu::PollType::wait_indefinitely())
                .map_err(|e| anyhow!("waiting for the GPU failed: {e}"))?;
            if !status.is_queue_empty() {
                idle_since = None;
                idle_polls = 0;
                continue;
            }
            // An idle poll may still deliver map callbacks, here or on another thread. Both a
            // time and a count of idle polls must pass: on a loaded machine this thread can
            // sleep through the whole grace period between two polls.
            let since = *idle_since.get_or_insert_with(std::time::Instant::now);
            idle_polls += 1;
            if since.elapsed() > IDLE_GRACE && idle_polls > IDLE_POLLS {
                return Err(anyhow!(
                    "Gpu::block_on: the future waits on something other than this GPU"
                ));
            }
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
    }

    /// [`Gpu::read_f32`], blocking (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_f32_blocking(&self, tensors: &[&Tensor]) -> Result<Vec<Vec<f32>>> {
        self.block_on(self.read_f32(tensors))?
    }
}

impl PendingRead {
    /// [`PendingRead::finish`] without waiting for work submitted after the copies: natively
    /// the device is polled up to the copies' own submission first (so that the host can
    /// use these bytes while later work still runs); in the browser it is `finish`.
    pub async fn finish_in_order(self) -> Result<Vec<Vec<u8>>> {
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(index) = &self.submission {
            self.gpu
                .device()
                .poll(wgpu::PollType::Wait {
                    submission_index: Some(index.clone()),
                    timeout: None,
                })
                .map_err(|e| anyhow!("waiting for the GPU failed: {e}"))?;
        }
        self.finish().await
    }

    /// [`PendingRead::finish_in_order`] for the f32 `tensors` the read was begun on, each
    /// as exactly its elements (as [`Gpu::read_f32`] gives them).
    pub async fn finish_in_order_f32(self, tensors: &[&Tensor]) -> Result<Vec<Vec<f32>>> {
        check_f32(tensors)?;
        let bytes = self.finish_in_order().await?;
        Ok(cast_each(&bytes, tensors))
    }

    /// Waits for the maps and copies the bytes out.
    pub async fn finish(self) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::with_capacity(self.parts.len());
        for mut part in self.parts {
            let mapped = (&mut part.receiver)
                .await
                .map_err(|_| anyhow!("the GPU dropped a readback"))?;
            if let Err(e) = mapped {
                part.mapped = false;
                return Err(anyhow!("mapping a readback buffer failed: {e}"));
            }
            if part.bytes == 0 {
                out.push(Vec::new());
                continue;
            }
            {
                let view = part
                    .staging
                    .buffer()
                    .slice(0..part.bytes)
                    .get_mapped_range()
                    .map_err(|e| anyhow!("reading a mapped buffer failed: {e:?}"))?;
                out.push(view.to_vec());
            }
            part.staging.buffer().unmap();
            part.mapped = false;
        }
        self.gpu.take_error()?;
        Ok(out)
    }
}

/// Refuses to read any of `tensors` as f32 unless it holds f32.
fn check_f32(tensors: &[&Tensor]) -> Result<()> {
    tensors.iter().try_for_each(|t| t.check_read_type::<f32>())
}

/// Each of `tensors`' read-back bytes as its elements.
fn cast_each<T: Element>(bytes: &[Vec<u8>], tensors: &[&Tensor]) -> Vec<Vec<T>> {
    bytes
        .iter()
        .zip(tensors)
        .map(|(b, t)| cast_vec(b, t.numel()))
        .collect()
}

fn cast_vec<T: Element>(bytes: &[u8], numel: usize) -> Vec<T> {
    let mut v: Vec<T> = bytemuck::pod_collect_to_vec(bytes);
    v.truncate(numel);
    v
}

impl Tensor {
    /// The contents as host values (awaits the device; for the browser and async hosts).
    pub async fn to_vec_async<T: Element>(&self) -> Result<Vec<T>> {
        self.check_read_type::<T>()?;
        let bytes = self.gpu().read_bytes(&[self]).await?;
        Ok(cast_vec(&bytes[0], self.numel()))
    }

    /// The contents as host values, blocking until the device is done (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        self.gpu().block_on(self.to_vec_async())?
    }

    pub(crate) fn check_read_type<T: Element>(&self) -> Result<()> {
        if T::DTYPE != self.dtype() {
            return Err(anyhow!("cannot read {:?} as {:?}", self, T::DTYPE));
        }
        Ok(())
    }
}
