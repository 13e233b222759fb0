//! GGUF Q8_0: blocks of 32 weights, one f16 scale `d` and 32 signed bytes;
//! byte `j` holds weight `j` as two's complement, and a weight is `d * q`.

use super::{pack_bytes, round_away, Codec, GgmlType};
use half::f16;

/// Weights per Q8_0 block.
pub const QK8_0: usize = 32;

/// One Q8_0 block, exactly as ggml lays it out (34 bytes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ8_0 {
    pub d: f16,
    pub qs: [i8; QK8_0],
}

impl BlockQ8_0 {
    pub const BYTES: usize = 2 + QK8_0;

    /// Serialize to ggml's byte layout.
    pub fn pack(&self, out: &mut [u8]) {
        out[..2].copy_from_slice(&self.d.to_le_bytes());
        for (o, &q) in out[2..Self::BYTES].iter_mut().zip(&self.qs) {
            *o = q as u8;
        }
    }

    /// Parse ggml's byte layout.
    pub fn unpack(b: &[u8]) -> Self {
        let mut qs = [0i8; QK8_0];
        for (q, &v) in qs.iter_mut().zip(&b[2..Self::BYTES]) {
            *q = v as i8;
        }
        BlockQ8_0 {
            d: f16::from_le_bytes([b[0], b[1]]),
            qs,
        }
    }

    /// ggml's `quantize_row_q8_0_ref` for one block.
    pub fn quantize(x: &[f32]) -> Self {
        let amax = x[..QK8_0].iter().fold(0.0f32, |a, &v| a.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut qs = [0i8; QK8_0];
        for (q, &v) in qs.iter_mut().zip(x) {
            // C's roundf: half away from zero; |v * id| <= 127 up to rounding.
            *q = round_away(v * id) as i8;
        }
        BlockQ8_0 {
            d: f16::from_f32(d),
            qs,
        }
    }

    /// ggml's `dequantize_row_q8_0` for one block.
    pub fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        for (o, &q) in out.iter_mut().zip(&self.qs) {
            *o = q as f32 * d;
        }
    }
}

/// The Q8_0 format.
pub struct Q8_0;

impl Codec for Q8_0 {
    fn name(&self) -> String {
        "q8_0".into()
    }
    fn block_values(&self) -> usize {
        QK8_0
    }
    fn block_bytes(&self) -> usize {
        BlockQ8_0::BYTES
    }
    fn quantize_block(&self, x: &[f32], out: &mut [u8]) {
        BlockQ8_0::quantize(x).pack(out);
    }
    fn dequantize_block(&self, block: &[u8], out: &mut [f32]) {
        BlockQ8_0::unpack(block).dequantize(out);
    }
    fn word_values(&self) -> usize {
        4
    }
    fn param_halves(&self) -> usize {
        1
    }
    fn gpu_block(&self, block: &[u8], codes: &mut [u32], params: &mut [u16]) {
        // The signed bytes in order, first byte lowest: the shader's unpack4xI8.
        for (w, chunk) in codes.iter_mut().zip(block[2..].chunks_exact(4)) {
            *w = pack_bytes(chunk);
        }
        params[0] = u16::from_le_bytes([block[0], block[1]]);
    }
    fn wgsl(&self) -> &'static str {
        include_str!("../../shaders/formats/q8_0.wgsl")
    }
    fn ggml_type(&self) -> Option<GgmlType> {
        Some(GgmlType::Q8_0)
    }
}
