//! Group-wise int8 / int4 of wgquant's own layout. (Being implemented.)

use super::Codec;
use std::fmt;

/// Describes the canonical CPU block layout of an [`IntFormat`].
pub struct IntLayout;

/// Group-wise integer weights: `bits` 4 or 8, `group` 32, 64 or 128 weights per f16 scale,
/// symmetric or asymmetric (integer zero point).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IntFormat {
    pub bits: u32,
    pub group: usize,
    pub asym: bool,
}

impl IntFormat {
    pub const fn new(bits: u32, group: usize, asym: bool) -> Self {
        IntFormat { bits, group, asym }
    }
}

impl fmt::Display for IntFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "int{}_g{}", self.bits, self.group)?;
        if self.asym {
            f.write_str("_asym")?;
        }
        Ok(())
    }
}

impl Codec for IntFormat {
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
        32 / self.bits as usize
    }
    fn param_halves(&self) -> usize {
        2
    }
    fn gpu_block(&self, _block: &[u8], _codes: &mut [u32], _params: &mut [u16]) {
        todo!()
    }
    fn wgsl(&self) -> &'static str {
        include_str!("../../shaders/formats/int.wgsl")
    }
    fn wgsl_constants(&self) -> Vec<(&'static str, f64)> {
        vec![("BITS", self.bits as f64)]
    }
}

/// The planes an int tensor is stored as in GGUF (which has no type for it):
/// codes `rows x (k * bits / 8)` bytes, scales `rows x groups` f16 bits, and for asymmetric
/// formats zero points `rows x groups` bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct IntPlanes {
    pub codes: Vec<u8>,
    pub scales: Vec<u16>,
    pub zeros: Option<Vec<u8>>,
}
