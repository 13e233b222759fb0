//! (Being implemented.)

use super::{Codec, GgmlType};

/// The q5_0 format.
pub struct Q5_0;

impl Codec for Q5_0 {
    fn name(&self) -> String {
        "q5_0".into()
    }
    fn block_values(&self) -> usize {
        32
    }
    fn block_bytes(&self) -> usize {
        todo!()
    }
    fn quantize_block(&self, _x: &[f32], _out: &mut [u8]) {
        todo!()
    }
    fn dequantize_block(&self, _block: &[u8], _out: &mut [f32]) {
        todo!()
    }
    fn word_values(&self) -> usize {
        8
    }
    fn param_halves(&self) -> usize {
        todo!()
    }
    fn gpu_block(&self, _block: &[u8], _codes: &mut [u32], _params: &mut [u16]) {
        todo!()
    }
    fn wgsl(&self) -> &'static str {
        include_str!("../../shaders/formats/q5_0.wgsl")
    }
    fn ggml_type(&self) -> Option<GgmlType> {
        Some(GgmlType::Q5_0)
    }
}

/// The q5_1 format.
pub struct Q5_1;

impl Codec for Q5_1 {
    fn name(&self) -> String {
        "q5_1".into()
    }
    fn block_values(&self) -> usize {
        32
    }
    fn block_bytes(&self) -> usize {
        todo!()
    }
    fn quantize_block(&self, _x: &[f32], _out: &mut [u8]) {
        todo!()
    }
    fn dequantize_block(&self, _block: &[u8], _out: &mut [f32]) {
        todo!()
    }
    fn word_values(&self) -> usize {
        8
    }
    fn param_halves(&self) -> usize {
        todo!()
    }
    fn gpu_block(&self, _block: &[u8], _codes: &mut [u32], _params: &mut [u16]) {
        todo!()
    }
    fn wgsl(&self) -> &'static str {
        include_str!("../../shaders/formats/q5_1.wgsl")
    }
    fn ggml_type(&self) -> Option<GgmlType> {
        Some(GgmlType::Q5_1)
    }
}
