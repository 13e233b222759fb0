//! (Being implemented.)

use super::{Codec, GgmlType};

/// The tq1_0 format.
pub struct TQ1_0;

impl Codec for TQ1_0 {
    fn name(&self) -> String {
        "tq1_0".into()
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
        include_str!("../../shaders/formats/tq1_0.wgsl")
    }
    fn ggml_type(&self) -> Option<GgmlType> {
        Some(GgmlType::TQ1_0)
    }
}

/// The tq2_0 format.
pub struct TQ2_0;

impl Codec for TQ2_0 {
    fn name(&self) -> String {
        "tq2_0".into()
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
        include_str!("../../shaders/formats/tq2_0.wgsl")
    }
    fn ggml_type(&self) -> Option<GgmlType> {
        Some(GgmlType::TQ2_0)
    }
}
