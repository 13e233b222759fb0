//! GGUF Q4_1: blocks of 32 weights, an f16 scale `d`, an f16 minimum `m` and 16 bytes of
//! 4-bit codes. Byte `j` holds weight `j` in its low nibble and weight `j + 16` in its high
//! nibble (as Q4_0); a weight is `d * q + m`.

use super::{pack_nibbles, Codec, GgmlType};
use half::f16;

/// Weights per Q4_1 block.
pub const QK4_1: usize = 32;

/// One Q4_1 block, exactly as ggml lays it out (20 bytes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ4_1 {
    pub d: f16,
    pub m: f16,
    pub qs: [u8; QK4_1 / 2],
}

impl BlockQ4_1 {
    pub const BYTES: usize = 4 + QK4_1 / 2;

    /// Serialize to ggml's byte layout.
    pub fn pack(&self, out: &mut [u8]) {
        out[..2].copy_from_slice(&self.d.to_le_bytes());
        out[2..4].copy_from_slice(&self.m.to_le_bytes());
        out[4..Self::BYTES].copy_from_slice(&self.qs);
    }

    /// Parse ggml's byte layout.
    pub fn unpack(b: &[u8]) -> Self {
        BlockQ4_1 {
            d: f16::from_le_bytes([b[0], b[1]]),
            m: f16::from_le_bytes([b[2], b[3]]),
            qs: b[4..Self::BYTES].try_into().unwrap(),
        }
    }

    /// The 4-bit code of weight `j`, 0..=15.
    pub fn code(&self, j: usize) -> u8 {
        let byte = self.qs[j % 16];
        if j < 16 {
            byte & 15
        } else {
            byte >> 4
        }
    }

    /// ggml's `quantize_row_q4_1_ref` for one block.
    ///
    /// Min and max come from ggml's strict-comparison loop, so on a tie of +0 and -0 the
    /// first one wins (gguf-py's numpy `min` may return the other sign of zero for `m`).
    pub fn quantize(x: &[f32]) -> Self {
        let mut min = f32::MAX;
        let mut max = -f32::MAX;
        for &v in &x[..QK4_1] {
            if v < min {
                min = v;
            }
            if v > max {
                max = v;
            }
        }
        let d = (max - min) / 15.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut qs = [0u8; 16];
        for (j, q) in qs.iter_mut().enumerate() {
            let x0 = (x[j] - min) * id;
            let x1 = (x[j + 16] - min) * id;
            // C's (int8_t) cast truncates toward zero.
            let q0 = ((x0 + 0.5) as i8).min(15) as u8;
            let q1 = ((x1 + 0.5) as i8).min(15) as u8;
            *q = q0 | (q1 << 4);
        }
        BlockQ4_1 {
            d: f16::from_f32(d),
            m: f16::from_f32(min),
            qs,
        }
    }

    /// ggml's `dequantize_row_q4_1` for one block (`q * d + m`, two f32 roundings).
    pub fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        let m = self.m.to_f32();
        for (j, o) in out.iter_mut().enumerate().take(QK4_1) {
            *o = self.code(j) as f32 * d + m;
        }
    }
}

/// The Q4_1 format.
pub struct Q4_1;

impl Codec for Q4_1 {
    fn name(&self) -> String {
        "q4_1".into()
    }
    fn block_values(&self) -> usize {
        QK4_1
    }
    fn block_bytes(&self) -> usize {
        BlockQ4_1::BYTES
    }
    fn quantize_block(&self, x: &[f32], out: &mut [u8]) {
        BlockQ4_1::quantize(x).pack(out);
    }
    fn dequantize_block(&self, block: &[u8], out: &mut [f32]) {
        BlockQ4_1::unpack(block).dequantize(out);
    }
    fn word_values(&self) -> usize {
        8
    }
    fn param_halves(&self) -> usize {
        2
    }
    fn gpu_block(&self, block: &[u8], codes: &mut [u32], params: &mut [u16]) {
        let b = BlockQ4_1::unpack(block);
        let q: Vec<u8> = (0..QK4_1).map(|j| b.code(j)).collect();
        for (w, chunk) in codes.iter_mut().zip(q.chunks_exact(8)) {
            *w = pack_nibbles(chunk);
        }
        params[0] = b.d.to_bits();
        params[1] = b.m.to_bits();
    }
    fn wgsl(&self) -> &'static str {
        include_str!("../../shaders/formats/q4_1.wgsl")
    }
    fn ggml_type(&self) -> Option<GgmlType> {
        Some(GgmlType::Q4_1)
    }
}
