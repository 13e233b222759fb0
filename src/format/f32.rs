//! Plain f32 weights: the baseline every quantized kernel is measured against.

use super::{Codec, GgmlType};

/// The f32 "format": blocks of 4 weights (one vec4 on the GPU), no parameters.
pub struct F32;

impl Codec for F32 {
    fn name(&self) -> String {
        "f32".into()
    }
    fn block_values(&self) -> usize {
        4
    }
    fn block_bytes(&self) -> usize {
        16
    }
    fn quantize_block(&self, x: &[f32], out: &mut [u8]) {
        out.copy_from_slice(bytemuck::cast_slice(x));
    }
    fn dequantize_block(&self, block: &[u8], out: &mut [f32]) {
        for (o, b) in out.iter_mut().zip(block.chunks_exact(4)) {
            *o = f32::from_le_bytes(b.try_into().unwrap());
        }
    }
    fn word_values(&self) -> usize {
        1
    }
    fn param_halves(&self) -> usize {
        0
    }
    fn gpu_block(&self, block: &[u8], codes: &mut [u32], _params: &mut [u16]) {
        for (c, b) in codes.iter_mut().zip(block.chunks_exact(4)) {
            *c = u32::from_le_bytes(b.try_into().unwrap());
        }
    }
    fn wgsl(&self) -> &'static str {
        include_str!("../../shaders/formats/f32.wgsl")
    }
    fn ggml_type(&self) -> Option<GgmlType> {
        Some(GgmlType::F32)
    }
}
