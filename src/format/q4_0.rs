//! GGUF Q4_0: blocks of 32 weights, one f16 scale `d` and 16 bytes of 4-bit codes.
//! Byte `j` holds weight `j` in its low nibble and weight `j + 16` in its high nibble;
//! a weight is `d * (q - 8)`.

use super::{pack_nibbles, Codec, GgmlType};
use half::f16;

/// Weights per Q4_0 block.
pub const QK4_0: usize = 32;

/// The 18-byte block of Q4_0 and IQ4_NL (ggml's `block_q4_0` and `block_iq4_nl` share the
/// layout): an f16 scale `d` and 16 bytes of 4-bit codes, byte `j` holding weight `j` in
/// its low nibble and weight `j + 16` in its high nibble. The formats differ only in what a
/// code means; `GRID` tells their block types apart ([`BlockQ4_0`], and
/// [`BlockIQ4_NL`](super::BlockIQ4_NL)), each with its own quantizer and dequantizer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Block4x32<const GRID: u8> {
    pub d: f16,
    pub qs: [u8; QK4_0 / 2],
}

/// `GRID` of [`BlockQ4_0`]: the linear grid `q - 8`.
pub const GRID_LINEAR: u8 = 0;

/// One Q4_0 block, exactly as ggml lays it out (18 bytes).
pub type BlockQ4_0 = Block4x32<GRID_LINEAR>;

impl<const GRID: u8> Block4x32<GRID> {
    pub const BYTES: usize = 2 + QK4_0 / 2;

    /// Serialize to ggml's byte layout.
    pub fn pack(&self, out: &mut [u8]) {
        out[..2].copy_from_slice(&self.d.to_le_bytes());
        out[2..Self::BYTES].copy_from_slice(&self.qs);
    }

    /// Parse ggml's byte layout.
    pub fn unpack(b: &[u8]) -> Self {
        Block4x32 {
            d: f16::from_le_bytes([b[0], b[1]]),
            qs: b[2..Self::BYTES].try_into().unwrap(),
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

    /// [`Codec::gpu_block`] of both formats: the codes in natural order, eight to a word,
    /// and one param half, `d`.
    pub(super) fn gpu_block(block: &[u8], codes: &mut [u32], params: &mut [u16]) {
        let b = Self::unpack(block);
        let q: [u8; QK4_0] = std::array::from_fn(|j| b.code(j));
        for (w, chunk) in codes.iter_mut().zip(q.chunks_exact(8)) {
            *w = pack_nibbles(chunk);
        }
        params[0] = b.d.to_bits();
    }
}

impl BlockQ4_0 {
    /// ggml's `quantize_row_q4_0_ref` for one block.
    pub fn quantize(x: &[f32]) -> Self {
        // The value of largest magnitude, sign kept; the first one wins ties.
        let mut amax = 0.0f32;
        let mut max = 0.0f32;
        for &v in x {
            if amax < v.abs() {
                amax = v.abs();
                max = v;
            }
        }
        let d = max / -8.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut qs = [0u8; 16];
        for (j, q) in qs.iter_mut().enumerate() {
            let x0 = x[j] * id;
            let x1 = x[j + 16] * id;
            // C's (int8_t) cast truncates toward zero.
            let q0 = ((x0 + 8.5) as i8).min(15) as u8;
            let q1 = ((x1 + 8.5) as i8).min(15) as u8;
            *q = q0 | (q1 << 4);
        }
        BlockQ4_0 {
            d: f16::from_f32(d),
            qs,
        }
    }

    /// ggml's `dequantize_row_q4_0` for one block.
    pub fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        for (j, o) in out.iter_mut().enumerate().take(QK4_0) {
            *o = (self.code(j) as i32 - 8) as f32 * d;
        }
    }
}

/// The Q4_0 format.
pub struct Q4_0;

impl Codec for Q4_0 {
    fn name(&self) -> String {
        "q4_0".into()
    }
    fn block_values(&self) -> usize {
        QK4_0
    }
    fn block_bytes(&self) -> usize {
        BlockQ4_0::BYTES
    }
    fn quantize_block(&self, x: &[f32], out: &mut [u8]) {
        BlockQ4_0::quantize(x).pack(out);
    }
    fn dequantize_block(&self, block: &[u8], out: &mut [f32]) {
        BlockQ4_0::unpack(block).dequantize(out);
    }
    fn word_values(&self) -> usize {
        8
    }
    fn param_halves(&self) -> usize {
        1
    }
    fn gpu_block(&self, block: &[u8], codes: &mut [u32], params: &mut [u16]) {
        BlockQ4_0::gpu_block(block, codes, params);
    }
    fn wgsl(&self) -> &'static str {
        include_str!("../../shaders/formats/q4_0.wgsl")
    }
    fn ggml_type(&self) -> Option<GgmlType> {
        Some(GgmlType::Q4_0)
    }
}
