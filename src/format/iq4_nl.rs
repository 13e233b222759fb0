//! (Being implemented.)

use super::{Codec, GgmlType};

/// The iq4_nl format.
pub struct IQ4_NL;

impl Codec for IQ4_NL {
    fn name(&self) -> String {
        "iq4_nl".into()
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
        include_str!("../../shaders/formats/iq4_nl.wgsl")
    }
    fn ggml_type(&self) -> Option<GgmlType> {
        Some(GgmlType::IQ4_NL)
    }
}
