//! How weights and x lie in GPU memory: the bytes of a row in each plane, how a weight's rows
//! split into chunks that each fit one storage binding, and the extent of a folded texture.
//! Pure arithmetic shared by the upload (`tensor.rs`) and the plan.

use crate::error::{Error, Result};
use crate::format::Format;
use crate::gpu::shaders::TEXTURE_WIDTH;

/// Rows per chunk are a multiple of this, so every chunk's f32 slice (for dequantization)
/// starts at a binding offset aligned to 256 bytes.
pub const CHUNK_ROW_MULTIPLE: usize = 64;

/// Bytes of one row in each GPU plane: (codes, params).
pub fn plane_row_bytes(format: Format, k: usize) -> (usize, usize) {
    let c = format.codec();
    let codes = k / c.word_values() * 4;
    let halves = k / c.block_values() * c.param_halves();
    (codes, halves.div_ceil(2) * 4)
}

/// Rows per chunk of a `rows` x `k` weight of `format` whose planes may hold at most
/// `max_binding_bytes` each: all rows where they fit, else the most whole multiples of
/// [`CHUNK_ROW_MULTIPLE`] that do ([`Error::DeviceLimit`] where not even that many fit).
pub fn rows_per_chunk(
    format: Format,
    rows: usize,
    k: usize,
    max_binding_bytes: u64,
) -> Result<usize> {
    let (code_bytes, param_bytes) = plane_row_bytes(format, k);
    let widest = code_bytes.max(param_bytes) as u64;
    if rows as u64 * widest <= max_binding_bytes {
        return Ok(rows);
    }
    let fit = (max_binding_bytes / widest) as usize;
    let fit = fit / CHUNK_ROW_MULTIPLE * CHUNK_ROW_MULTIPLE;
    if fit == 0 {
        return Err(Error::DeviceLimit(format!(
            "{CHUNK_ROW_MULTIPLE} rows of this {format} weight (k = {k}) need {} bytes, \
             more than the {max_binding_bytes}-byte storage binding limit",
            CHUNK_ROW_MULTIPLE as u64 * widest
        )));
    }
    Ok(fit)
}

/// The largest plane a weight chunk may have on a device: its storage binding limit, and
/// no more than one buffer.
pub fn max_plane_bytes(limits: &wgpu::Limits) -> u64 {
    limits
        .max_storage_buffer_binding_size
        .min(limits.max_buffer_size)
}

/// The extent of a folded texture holding `texels` texels (plane element i at
/// (i % [`TEXTURE_WIDTH`], i / [`TEXTURE_WIDTH`])), if the device allows it.
pub fn folded_extent(texels: usize, limits: &wgpu::Limits) -> Option<wgpu::Extent3d> {
    let width = texels.clamp(1, TEXTURE_WIDTH as usize);
    let height = texels.div_ceil(TEXTURE_WIDTH as usize).max(1);
    let max = limits.max_texture_dimension_2d as usize;
    (width <= max && height <= max).then_some(wgpu::Extent3d {
        width: width as u32,
        height: height as u32,
        depth_or_array_layers: 1,
    })
}
