//! Weights on the GPU: the format's code and param planes, split by rows into chunks that
//! each fit one storage binding.

use super::GpuContext;
use crate::error::{Error, Result};
use crate::format::{Format, QuantizedTensor};
use wgpu::util::DeviceExt;

/// Rows per chunk are a multiple of this, so every chunk's f32 slice (for dequantization)
/// starts at a binding offset aligned to 256 bytes.
pub const CHUNK_ROW_MULTIPLE: usize = 64;

/// One row range of a weight, in buffers that fit one binding each.
#[derive(Debug)]
pub struct WeightChunk {
    /// First row of this chunk.
    pub row_start: usize,
    /// Rows in this chunk.
    pub rows: usize,
    pub codes: wgpu::Buffer,
    pub params: wgpu::Buffer,
}

/// A quantized (or f32) weight matrix of `rows` x `k` on the GPU.
#[derive(Debug)]
pub struct GpuWeight {
    format: Format,
    rows: usize,
    k: usize,
    chunks: Vec<WeightChunk>,
}

/// Bytes of one row in each GPU plane: (codes, params).
pub fn plane_row_bytes(format: Format, k: usize) -> (usize, usize) {
    let c = format.codec();
    let codes = k / c.word_values() * 4;
    let halves = k / c.block_values() * c.param_halves();
    (codes, halves.div_ceil(2) * 4)
}

impl GpuWeight {
    /// Upload a weight, split into chunks of at most the device's storage binding size.
    pub fn upload(ctx: &GpuContext, t: &QuantizedTensor) -> Result<Self> {
        let limits = ctx.device.limits();
        let max = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size);
        Self::upload_with_max_binding(ctx, t, max)
    }

    /// Upload with chunks of at most `max_binding_bytes` per plane (lower than the device's
    /// limit to exercise the split on small tensors).
    pub fn upload_with_max_binding(
        ctx: &GpuContext,
        t: &QuantizedTensor,
        max_binding_bytes: u64,
    ) -> Result<Self> {
        let format = t.format();
        let (rows, k) = (t.rows(), t.k());
        if rows == 0 {
            return Err(Error::Shape("a weight needs at least one row".into()));
        }
        let (code_bytes, param_bytes) = plane_row_bytes(format, k);
        let widest = code_bytes.max(param_bytes) as u64;
        let rows_per_chunk = if rows as u64 * widest <= max_binding_bytes {
            rows
        } else {
            let fit = (max_binding_bytes / widest) as usize;
            let fit = fit / CHUNK_ROW_MULTIPLE * CHUNK_ROW_MULTIPLE;
            if fit == 0 {
                return Err(Error::DeviceLimit(format!(
                    "{CHUNK_ROW_MULTIPLE} rows of this {format} weight (k = {k}) need {} bytes, \
                     more than the {max_binding_bytes}-byte storage binding limit",
                    CHUNK_ROW_MULTIPLE as u64 * widest
                )));
            }
            fit
        };
        let mut chunks = Vec::new();
        let mut start = 0;
        while start < rows {
            let end = (start + rows_per_chunk).min(rows);
            let (codes, params) = t.gpu_planes(start..end);
            let make = |label: &str, words: &[u32]| {
                ctx.device
                    .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                        label: Some(label),
                        contents: bytemuck::cast_slice(words),
                        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                    })
            };
            chunks.push(WeightChunk {
                row_start: start,
                rows: end - start,
                codes: make("wgquant codes", &codes),
                params: make("wgquant params", &params),
            });
            start = end;
        }
        Ok(GpuWeight {
            format,
            rows,
            k,
            chunks,
        })
    }

    pub fn format(&self) -> Format {
        self.format
    }
    /// Output features (rows of the weight).
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Input features (row length).
    pub fn k(&self) -> usize {
        self.k
    }
    /// The row chunks, each bound separately.
    pub fn chunks(&self) -> &[WeightChunk] {
        &self.chunks
    }
    /// Bytes of the GPU planes (what a kernel must read once).
    pub fn gpu_bytes(&self) -> u64 {
        self.chunks
            .iter()
            .map(|c| c.codes.size() + c.params.size())
            .sum()
    }
}
