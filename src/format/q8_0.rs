//! GGUF Q8_0. (Being implemented.)

use super::{Codec, GgmlType};

/// One Q8_0 block as ggml lays it out.
pub struct BlockQ8_0;

/// The Q8_0 format.
pub struct Q8_0;

impl Codec for Q8_0 {
    fn block_values(&self) -> usize { 32 }
    fn block_bytes(&self) -> usize { todo!() }
    fn quantize_block(&self, _x: &[f32], _out: &mut [u8]) { todo!() }
    fn dequantize_block(&self, _block: &[u8], _out: &mut [f32]) { todo!() }
    fn word_values(&self) -> usize { todo!() }
    fn param_halves(&self) -> usize { todo!() }
    fn gpu_block(&self, _block: &[u8], _codes: &mut [u32], _params: &mut [u16]) { todo!() }
    fn wgsl(&self) -> &'static str { include_str!("../../shaders/formats/q8_0.wgsl") }
    fn ggml_type(&self) -> Option<GgmlType> { Some(GgmlType::Q8_0) }
}
