//! wgquant 1-bit weights. (Being implemented.)

use super::Codec;
use std::fmt;

/// Sign bits with one f16 scale (mean |w|) per `group` weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BinaryFormat {
    pub group: usize,
}

impl BinaryFormat {
    pub const fn new(group: usize) -> Self {
        BinaryFormat { group }
    }
}

impl fmt::Display for BinaryFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b1_g{}", self.group)
    }
}

impl Codec for BinaryFormat {
    fn name(&self) -> String {
        self.to_string()
    }
    fn block_values(&self) -> usize {
        self.group
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
        32
    }
    fn param_halves(&self) -> usize {
        todo!()
    }
    fn gpu_block(&self, _block: &[u8], _codes: &mut [u32], _params: &mut [u16]) {
        todo!()
    }
    fn wgsl(&self) -> &'static str {
        include_str!("../../shaders/formats/binary.wgsl")
    }
}
