//! Weights on the GPU: the format's code and param planes, split by rows into chunks that
//! each fit one storage binding.

use super::device::GpuContext;
use super::layout::{folded_extent, max_plane_bytes, rows_per_chunk};
use super::plan::uses_textures;
use super::shaders::TEXTURE_WIDTH;
use crate::error::{Error, Result};
use crate::format::{Format, QuantizedTensor};
use wgpu::util::DeviceExt;

/// One row range of a weight, in buffers that fit one binding each.
#[derive(Debug)]
pub struct WeightChunk {
    /// First row of this chunk.
    pub row_start: usize,
    /// Rows in this chunk.
    pub rows: usize,
    pub codes: wgpu::Buffer,
    pub params: wgpu::Buffer,
    /// The same planes as folded textures, for the texture GEMV of CPU adapters
    /// ([`uses_textures`]); `None` elsewhere or where a plane exceeds the texture limits.
    pub textures: Option<ChunkTextures>,
}

/// A weight chunk's planes as textures (`shaders/io_texture.wgsl`): codes as Rgba32Uint
/// (one 16-byte chunk per texel), params as Rgba32Uint (four words per texel), each folded
/// into rows of [`TEXTURE_WIDTH`] texels.
#[derive(Debug)]
pub struct ChunkTextures {
    pub codes: wgpu::TextureView,
    pub params: wgpu::TextureView,
}

/// A folded texture of `format` holding `data` (whole texels), or `None` past the limits.
fn folded_texture(
    ctx: &GpuContext,
    label: &str,
    format: wgpu::TextureFormat,
    data: &[u32],
) -> Option<wgpu::TextureView> {
    let texel_words = (format.block_copy_size(None)? / 4) as usize;
    let texels = data.len() / texel_words;
    let size = folded_extent(texels, &ctx.device.limits())?;
    let texture = ctx.device.create_texture(&wgpu::TextureDescriptor {
        label: Some(label),
        size,
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format,
        usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
        view_formats: &[],
    });
    let width = TEXTURE_WIDTH as usize;
    let row_bytes = (width * texel_words * 4) as u32;
    let (full_rows, rest) = (texels / width, texels % width);
    // Whole rows in one write, then the partial last row.
    for (y, rows, w) in [(0, full_rows, width), (full_rows, 1, rest)] {
        if rows == 0 || w == 0 {
            continue;
        }
        let start = y * width * texel_words;
        ctx.queue.write_texture(
            wgpu::TexelCopyTextureInfo {
                texture: &texture,
                mip_level: 0,
                origin: wgpu::Origin3d {
                    x: 0,
                    y: y as u32,
                    z: 0,
                },
                aspect: wgpu::TextureAspect::All,
            },
            bytemuck::cast_slice(
                &data[start..start + (rows - 1) * width * texel_words + w * texel_words],
            ),
            wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(row_bytes),
                rows_per_image: None,
            },
            wgpu::Extent3d {
                width: w as u32,
                height: rows as u32,
                depth_or_array_layers: 1,
            },
        );
    }
    Some(texture.create_view(&Default::default()))
}

/// A quantized (or f32) weight matrix of `rows` x `k` on the GPU.
#[derive(Debug)]
pub struct GpuWeight {
    format: Format,
    rows: usize,
    k: usize,
    chunks: Vec<WeightChunk>,
}

impl GpuWeight {
    /// Upload a weight, split into chunks of at most the device's storage binding size.
    pub fn upload(ctx: &GpuContext, t: &QuantizedTensor) -> Result<Self> {
        Self::upload_with_max_binding(ctx, t, max_plane_bytes(&ctx.device.limits()))
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
        let rows_per_chunk = rows_per_chunk(format, rows, k, max_binding_bytes)?;
        let textures = uses_textures(&ctx.device);
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
            let textures = if textures {
                let code_tex = folded_texture(
                    ctx,
                    "wgquant codes",
                    wgpu::TextureFormat::Rgba32Uint,
                    &codes,
                );
                // A texel per chunk where the format has that layout, else four words of
                // the plane per texel, each row's padded to whole texels.
                let row_words = params.len() / (end - start);
                let pad = row_words.next_multiple_of(4) - row_words;
                let param_texels: Vec<u32> = if let Some(t) = format.chunk_param_texels(k, &params)
                {
                    t
                } else if row_words == 0 {
                    vec![0; 4]
                } else {
                    params
                        .chunks_exact(row_words)
                        .flat_map(|row| row.iter().copied().chain(std::iter::repeat_n(0, pad)))
                        .collect()
                };
                let param_tex = folded_texture(
                    ctx,
                    "wgquant params",
                    wgpu::TextureFormat::Rgba32Uint,
                    &param_texels,
                );
                code_tex
                    .zip(param_tex)
                    .map(|(codes, params)| ChunkTextures { codes, params })
            } else {
                None
            };
            chunks.push(WeightChunk {
                row_start: start,
                rows: end - start,
                codes: make("wgquant codes", &codes),
                params: make("wgquant params", &params),
                textures,
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
