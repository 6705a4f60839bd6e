//! Buffer pool: reuses device buffers by (usage, size class).
//!
//! Size classes are powers of two up to 4 KiB, then four classes per octave (at most 25%
//! waste). A freed buffer first goes to a *retiring* list, because commands that use it may
//! still sit in the unsubmitted encoder; `queue.write_buffer` runs before those commands, so
//! a buffer that will be filled by an upload may only come from the *free* list, which the
//! context refills at every submit. Buffers that only kernels or encoder commands will write
//! (`Tensor::empty`, `Tensor::zeros`) may also be taken from the retiring list, since encoder
//! commands keep their order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Smallest buffer the pool hands out, in bytes.
pub const MIN_BUFFER_BYTES: u64 = 256;

/// The size class that `bytes` is rounded up to.
pub fn size_class(bytes: u64) -> u64 {
    let b = bytes.max(MIN_BUFFER_BYTES);
    if b <= 4096 {
        return b.next_power_of_two();
    }
    let octave = 1u64 << (63 - (b - 1).leading_zeros());
    let step = octave / 4;
    b.div_ceil(step) * step
}

type Key = (u32, u64);

#[derive(Default)]
struct PoolState {
    free: HashMap<Key, Vec<wgpu::Buffer>>,
    retiring: Vec<(Key, wgpu::Buffer)>,
    stats: PoolStats,
}

/// Memory figures of the pool, in bytes.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct PoolStats {
    /// Bytes of every device buffer the pool has created and still holds or lent out.
    pub allocated: u64,
    /// Bytes lent out right now.
    pub in_use: u64,
    /// Highest `in_use` seen since creation or the last `reset_peak`.
    pub peak_in_use: u64,
    /// Highest `allocated` seen since creation or the last `reset_peak`.
    pub peak_allocated: u64,
    /// Requests served from a pooled buffer.
    pub reuses: u64,
    /// Requests that created a new device buffer.
    pub creations: u64,
}

/// A pool of device buffers shared by every tensor of one device.
pub struct BufferPool {
    device: wgpu::Device,
    state: Mutex<PoolState>,
}

/// A buffer lent by the pool; it returns to the pool when dropped.
pub struct PooledBuffer {
    buffer: Option<wgpu::Buffer>,
    key: Key,
    pool: Arc<BufferPool>,
}

impl PooledBuffer {
    pub fn buffer(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().expect("buffer present until drop")
    }

    /// Capacity in bytes (the size class, at least the requested size).
    pub fn capacity(&self) -> u64 {
        self.key.1
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if let Some(buffer) = self.buffer.take() {
            self.pool.retire(self.key, buffer);
        }
    }
}

impl BufferPool {
    pub fn new(device: wgpu::Device) -> Arc<Self> {
        Arc::new(Self {
            device,
            state: Mutex::new(PoolState::default()),
        })
    }

    /// Lends a buffer of at least `bytes` bytes with `usage`. With `allow_retiring`, a buffer
    /// freed since the last submit may be handed out (only for contents written by commands
    /// recorded after this call, never by `queue.write_buffer`).
    pub fn acquire(
        self: &Arc<Self>,
        usage: wgpu::BufferUsages,
        bytes: u64,
        class: u64,
        allow_retiring: bool,
    ) -> PooledBuffer {
        debug_assert!(class >= bytes);
        let key = (usage.bits(), class);
        let mut state = self.state.lock().unwrap();
        let mut found = state.free.get_mut(&key).and_then(Vec::pop);
        if found.is_none()
            && allow_retiring
            && let Some(pos) = state.retiring.iter().position(|(k, _)| *k == key)
        {
            found = Some(state.retiring.swap_remove(pos).1);
        }
        let buffer = match found {
            Some(buffer) => {
                state.stats.reuses += 1;
                buffer
            }
            None => {
                state.stats.creations += 1;
                state.stats.allocated += class;
                state.stats.peak_allocated = state.stats.peak_allocated.max(state.stats.allocated);
                self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("taskgate pooled buffer"),
                    size: class,
                    usage,
                    mapped_at_creation: false,
                })
            }
        };
        state.stats.in_use += class;
        state.stats.peak_in_use = state.stats.peak_in_use.max(state.stats.in_use);
        PooledBuffer {
            buffer: Some(buffer),
            key,
            pool: Arc::clone(self),
        }
    }

    fn retire(&self, key: Key, buffer: wgpu::Buffer) {
        let mut state = self.state.lock().unwrap();
        state.stats.in_use -= key.1;
        state.retiring.push((key, buffer));
    }

    /// Called after every queue submit: retired buffers become free for any use.
    pub fn after_submit(&self) {
        let mut state = self.state.lock().unwrap();
        let retiring = std::mem::take(&mut state.retiring);
        for (key, buffer) in retiring {
            state.free.entry(key).or_default().push(buffer);
        }
    }

    /// Counts memory the pool does not own (pooled textures) in its figures.
    pub fn account(&self, allocated: i64, in_use: i64) {
        let mut state = self.state.lock().unwrap();
        let s = &mut state.stats;
        s.allocated = s.allocated.saturating_add_signed(allocated);
        s.in_use = s.in_use.saturating_add_signed(in_use);
        s.peak_allocated = s.peak_allocated.max(s.allocated);
        s.peak_in_use = s.peak_in_use.max(s.in_use);
    }

    pub fn stats(&self) -> PoolStats {
        self.state.lock().unwrap().stats
    }

    /// Restarts the peak figures from the current ones.
    pub fn reset_peak(&self) {
        let mut state = self.state.lock().unwrap();
        state.stats.peak_in_use = state.stats.in_use;
        state.stats.peak_allocated = state.stats.allocated;
    }
}

#[cfg(test)]
mod tests {
    use super::size_class;

    #[test]
    fn size_classes_round_up_with_bounded_waste() {
        assert_eq!(size_class(0), 256);
        assert_eq!(size_class(1), 256);
        assert_eq!(size_class(257), 512);
        assert_eq!(size_class(4096), 4096);
        assert_eq!(size_class(4097), 5120);
        assert_eq!(size_class(5120), 5120);
        assert_eq!(size_class(8192), 8192);
        assert_eq!(size_class(8193), 10240);
        for bytes in (1..2_000_000u64).step_by(997) {
            let class = size_class(bytes);
            assert!(class >= bytes);
            assert_eq!(class % 256, 0);
            if bytes > 4096 {
                assert!(
                    class as f64 <= bytes as f64 * 1.25 + 1.0,
                    "{bytes} -> {class}"
                );
            }
        }
    }
}
