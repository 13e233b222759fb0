//! (Being implemented.)

use super::{Codec, GgmlType};

/// The q2_k format.
pub struct Q2_K;

impl Codec for Q2_K {
    fn name(&self) -> String {
        "q2_k".into()
    }
    fn block_values(&self) -> usize {
        256
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
        include_str!("../../shaders/formats/q2_k.wgsl")
    }
    fn ggml_type(&self) -> Option<GgmlType> {
        Some(GgmlType::Q2_K)
    }
}
