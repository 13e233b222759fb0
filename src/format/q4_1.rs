//! GGUF Q4_1. (Being implemented.)

use super::{Codec, GgmlType};

/// One Q4_1 block as ggml lays it out.
pub struct BlockQ4_1;

/// The Q4_1 format.
pub struct Q4_1;

impl Codec for Q4_1 {
    fn block_values(&self) -> usize { 32 }
    fn block_bytes(&self) -> usize { todo!() }
    fn quantize_block(&self, _x: &[f32], _out: &mut [u8]) { todo!() }
    fn dequantize_block(&self, _block: &[u8], _out: &mut [f32]) { todo!() }
    fn word_values(&self) -> usize { todo!() }
    fn param_halves(&self) -> usize { todo!() }
    fn gpu_block(&self, _block: &[u8], _codes: &mut [u32], _params: &mut [u16]) { todo!() }
    fn wgsl(&self) -> &'static str { include_str!("../../shaders/formats/q4_1.wgsl") }
    fn ggml_type(&self) -> Option<GgmlType> { Some(GgmlType::Q4_1) }
}
