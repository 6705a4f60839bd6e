//! Tensors: a pooled device buffer with a shape and an element type.
//!
//! Clones share the buffer. Sizes are checked against the device's `max_buffer_size` when
//! allocating; binding sizes are checked by the dispatch helper.

use std::sync::Arc;

use anyhow::{Result, bail};

use super::context::Gpu;
use super::pool::{PooledBuffer, size_class};

/// Element types kernels read and write (all 4 bytes wide).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    I32,
    U32,
}

impl DType {
    pub fn size(self) -> usize {
        4
    }
}

/// Host types that map to a [`DType`].
pub trait Element: bytemuck::Pod {
    const DTYPE: DType;
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
}
impl Element for i32 {
    const DTYPE: DType = DType::I32;
}
impl Element for u32 {
    const DTYPE: DType = DType::U32;
}

/// Usage of every tensor buffer: kernels read/write it, uploads and readbacks copy it.
pub const TENSOR_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// A device tensor (row-major, contiguous), or a view into part of another tensor's buffer.
#[derive(Clone)]
pub struct Tensor {
    gpu: Gpu,
    buf: Arc<PooledBuffer>,
    /// Byte offset of element 0 in the buffer (0 unless this is a view).
    offset: u64,
    shape: Vec<usize>,
    dtype: DType,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor({:?}, {:?})", self.dtype, self.shape)
    }
}

fn numel_of(shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| anyhow::anyhow!("tensor shape {shape:?} overflows"))
}

impl Tensor {
    fn allocate(gpu: &Gpu, shape: &[usize], dtype: DType, from_upload: bool) -> Result<Self> {
        let numel = numel_of(shape)?;
        let bytes = (numel as u64) * dtype.size() as u64;
        let max = gpu.limits().max_buffer_size;
        let mut class = size_class(bytes);
        if class > max {
            class = bytes.div_ceil(16) * 16;
        }
        if class > max {
            bail!(
                "tensor of shape {shape:?} needs {} MiB, more than this adapter's \
                 max_buffer_size of {} MiB; use a smaller batch, sequence length or model",
                bytes >> 20,
                max >> 20
            );
        }
        let buf = gpu
            .inner
            .pool
            .acquire(TENSOR_USAGE, bytes, class, !from_upload);
        Ok(Self {
            gpu: gpu.clone(),
            buf: Arc::new(buf),
            offset: 0,
            shape: shape.to_vec(),
            dtype,
        })
    }

    /// A tensor whose contents are undefined until a kernel writes all of it.
    pub fn empty(gpu: &Gpu, shape: &[usize], dtype: DType) -> Result<Self> {
        Self::allocate(gpu, shape, dtype, false)
    }

    /// A tensor of zeros (cleared by a command on the pending encoder).
    pub fn zeros(gpu: &Gpu, shape: &[usize], dtype: DType) -> Result<Self> {
        let t = Self::allocate(gpu, shape, dtype, false)?;
        t.fill_zero();
        Ok(t)
    }

    /// Uploads `data` into a new tensor of `shape`.
    pub fn from_slice<T: Element>(gpu: &Gpu, data: &[T], shape: &[usize]) -> Result<Self> {
        let numel = numel_of(shape)?;
        if numel != data.len() {
            bail!(
                "shape {shape:?} holds {numel} elements but {} were given",
                data.len()
            );
        }
        let t = Self::allocate(gpu, shape, T::DTYPE, true)?;
        if !data.is_empty() {
            gpu.queue()
                .write_buffer(t.buffer(), 0, bytemuck::cast_slice(data));
        }
        Ok(t)
    }

    /// Overwrites the contents with `data` (same element count and type). Commands already
    /// recorded are submitted first so that they see the old contents.
    pub fn write<T: Element>(&self, data: &[T]) -> Result<()> {
        if T::DTYPE != self.dtype || data.len() != self.numel() {
            bail!(
                "cannot write {} {:?} values into {:?}",
                data.len(),
                T::DTYPE,
                self
            );
        }
        self.gpu.flush()?;
        if !data.is_empty() {
            self.gpu
                .queue()
                .write_buffer(self.buffer(), self.offset, bytemuck::cast_slice(data));
        }
        Ok(())
    }

    /// Sets every element to zero (recorded on the pending encoder).
    pub fn fill_zero(&self) {
        let bytes = self.bytes();
        if bytes > 0 {
            self.gpu.record(|enc| {
                enc.clear_buffer(self.buffer(), self.offset, Some(bytes.div_ceil(4) * 4))
            });
        }
    }

    /// The same buffer seen with another shape of equal element count.
    pub fn reshape(&self, shape: &[usize]) -> Result<Self> {
        if numel_of(shape)? != self.numel() {
            bail!("cannot reshape {:?} to {shape:?}", self.shape);
        }
        Ok(Self {
            shape: shape.to_vec(),
            ..self.clone()
        })
    }

    /// A view of `shape` starting `element_offset` elements into this tensor, sharing its
    /// buffer. Kernels can bind a view only when its byte offset is a multiple of the
    /// adapter's `min_storage_buffer_offset_alignment` (256 bytes is always enough).
    pub fn view(&self, element_offset: usize, shape: &[usize]) -> Result<Self> {
        let numel = numel_of(shape)?;
        if element_offset
            .checked_add(numel)
            .is_none_or(|end| end > self.numel())
        {
            bail!(
                "view of {shape:?} at element {element_offset} does not fit in {:?}",
                self.shape
            );
        }
        Ok(Self {
            offset: self.offset + (element_offset * self.dtype.size()) as u64,
            shape: shape.to_vec(),
            ..self.clone()
        })
    }

    /// Byte offset of element 0 in the underlying buffer.
    pub fn offset_bytes(&self) -> u64 {
        self.offset
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Size of the contents in bytes.
    pub fn bytes(&self) -> u64 {
        (self.numel() * self.dtype.size()) as u64
    }

    pub fn buffer(&self) -> &wgpu::Buffer {
        self.buf.buffer()
    }

    /// Bytes of the underlying buffer from this tensor's first element to the buffer's end.
    pub fn capacity(&self) -> u64 {
        self.buf.capacity() - self.offset
    }

    /// True when both tensors share one device buffer.
    pub fn same_buffer(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.buf, &other.buf)
    }

    /// Errors unless the tensor has exactly `shape` and `dtype`.
    pub fn expect(&self, what: &str, shape: &[usize], dtype: DType) -> Result<()> {
        if self.shape != shape || self.dtype != dtype {
            bail!(
                "{what}: expected {dtype:?} {shape:?}, got {:?} {:?}",
                self.dtype,
                self.shape
            );
        }
        Ok(())
    }

    /// Errors unless the tensor holds `numel` elements of `dtype` (any shape).
    pub fn expect_len(&self, what: &str, numel: usize, dtype: DType) -> Result<()> {
        if self.numel() != numel || self.dtype != dtype {
            bail!(
                "{what}: expected {numel} {dtype:?} elements, got {:?} {:?}",
                self.dtype,
                self.shape
            );
        }
        Ok(())
    }
}
