//! GGUF Q5_0 and Q5_1: blocks of 32 weights with 5-bit codes, split into a low nibble
//! (packed as in Q4_0) and a fifth bit (one `u32` of high bits per block).
//!
//! # Block layout
//! In the style of ggml-common.h (little-endian, no padding):
//!
//! ```text
//! // Q5_0: 22 bytes, 5.5 bits per weight
//! typedef struct {
//!     ggml_half d;           // scale
//!     uint8_t   qh[4];       // bit j (of the little-endian u32) = 5th bit of weight j
//!     uint8_t   qs[16];      // byte j: low nibble = weight j, high nibble = weight j + 16
//! } block_q5_0;              // w = d * (q - 16)
//!
//! // Q5_1: 24 bytes, 6 bits per weight
//! typedef struct {
//!     ggml_half d;           // scale
//!     ggml_half m;           // minimum
//!     uint8_t   qh[4];       // as Q5_0
//!     uint8_t   qs[16];      // as Q5_0
//! } block_q5_1;              // w = d * q + m
//! ```
//!
//! The code of weight `j` is `q = nibble_j | (bit j of qh) << 4`, `0 ..= 31`.
//!
//! # Reference quantizers (ggml's `quantize_row_q5_0_ref` / `quantize_row_q5_1_ref`)
//! - Q5_0: `max` is the value of largest magnitude, sign kept (the first wins ties);
//!   `d = max / -16`, `id = 1 / d` (0 if `d` is 0), `q = min(31, trunc(x * id + 16.5))`.
//!   The stored scale is `f16(d)`, but the codes use the f32 `d`.
//! - Q5_1: `min` / `max` from a strict-comparison loop (the first wins, so a tie of +0 and
//!   -0 keeps the first); `d = (max - min) / 31`, `id = 1 / d` (0 if `d` is 0),
//!   `q = trunc((x - min) * id + 0.5)`; `d` and `min` are stored as f16.
//!
//! Both are byte-identical to `gguf.quants.quantize` (gguf-py 0.19.0) except where numpy's
//! `min` picks the other sign of a zero minimum for Q5_1 (wgquant follows ggml's C).
//!
//! # Dequantization
//! ggml's `dequantize_row_q5_*`: `(q - 16) as f32 * d` and `q as f32 * d + m` (two f32
//! roundings, no fused multiply-add). `d * q` is exact (an f16 times a 5-bit integer).
//!
//! # GPU layout
//! Codes: the low nibbles in natural order (word `w` holds weights `8w .. 8w + 7`), as the
//! other 4-bit formats. Params per block, the high bits right after the scales:
//! - Q5_0: 3 halves: `d`, `qh & 0xffff`, `qh >> 16` (so a block's params may straddle
//!   `u32` words; the shader loads the two words that hold them).
//! - Q5_1: 4 halves (two words): `d`, `m`, `qh & 0xffff`, `qh >> 16`.

use super::{pack_nibbles, ChunkParamTexel, Codec, GgmlType};
use half::f16;

/// Weights per Q5_0 / Q5_1 block.
pub const QK5: usize = 32;

/// The low nibble of weight `j` from ggml's `qs` (byte `j % 16`, low half for `j < 16`).
fn low_nibble(qs: &[u8; 16], j: usize) -> u8 {
    let byte = qs[j % 16];
    if j < 16 {
        byte & 15
    } else {
        byte >> 4
    }
}

/// C's float-to-byte conversion as x86 compilers emit it (and numpy does): truncate toward
/// zero through an `i32` (NaN and out-of-range values become `i32::MIN`), keep the low
/// byte. Only non-finite inputs (an f32-subnormal `d`, so `id` is infinite) reach the
/// out-of-range path; they give code 0.
fn c_trunc_byte(v: f32) -> u8 {
    let i = if v.is_nan() || v.abs() >= 2_147_483_648.0 {
        i32::MIN
    } else {
        v as i32
    };
    i as u8
}

/// Split 32 five-bit codes into ggml's `qh` and `qs`.
fn split_codes(q: &[u8; QK5]) -> (u32, [u8; 16]) {
    let mut qh = 0u32;
    let mut qs = [0u8; 16];
    for (j, &v) in q.iter().enumerate() {
        qh |= ((v as u32 >> 4) & 1) << j;
    }
    for (j, byte) in qs.iter_mut().enumerate() {
        *byte = (q[j] & 15) | ((q[j + 16] & 15) << 4);
    }
    (qh, qs)
}

/// One Q5_0 block, exactly as ggml lays it out (22 bytes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ5_0 {
    pub d: f16,
    pub qh: u32,
    pub qs: [u8; QK5 / 2],
}

impl BlockQ5_0 {
    pub const BYTES: usize = 2 + 4 + QK5 / 2;

    /// Serialize to ggml's byte layout.
    pub fn pack(&self, out: &mut [u8]) {
        out[..2].copy_from_slice(&self.d.to_le_bytes());
        out[2..6].copy_from_slice(&self.qh.to_le_bytes());
        out[6..Self::BYTES].copy_from_slice(&self.qs);
    }

    /// Parse ggml's byte layout.
    pub fn unpack(b: &[u8]) -> Self {
        BlockQ5_0 {
            d: f16::from_le_bytes([b[0], b[1]]),
            qh: u32::from_le_bytes([b[2], b[3], b[4], b[5]]),
            qs: b[6..Self::BYTES].try_into().unwrap(),
        }
    }

    /// The 5-bit code of weight `j`, 0..=31.
    pub fn code(&self, j: usize) -> u8 {
        low_nibble(&self.qs, j) | (((self.qh >> j) & 1) as u8) << 4
    }

    /// ggml's `quantize_row_q5_0_ref` for one block.
    pub fn quantize(x: &[f32]) -> Self {
        let mut amax = 0.0f32;
        let mut max = 0.0f32;
        for &v in &x[..QK5] {
            if amax < v.abs() {
                amax = v.abs();
                max = v;
            }
        }
        let d = max / -16.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        // MIN(31, (int8_t)(x * id + 16.5)); for finite id the argument lies in [0, 32.5].
        let q: [u8; QK5] =
            std::array::from_fn(|j| (c_trunc_byte(x[j] * id + 16.5) as i8).min(31) as u8);
        let (qh, qs) = split_codes(&q);
        BlockQ5_0 {
            d: f16::from_f32(d),
            qh,
            qs,
        }
    }

    /// ggml's `dequantize_row_q5_0` for one block.
    pub fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        for (j, o) in out.iter_mut().enumerate().take(QK5) {
            *o = (self.code(j) as i32 - 16) as f32 * d;
        }
    }
}

/// One Q5_1 block, exactly as ggml lays it out (24 bytes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ5_1 {
    pub d: f16,
    pub m: f16,
    pub qh: u32,
    pub qs: [u8; QK5 / 2],
}

impl BlockQ5_1 {
    pub const BYTES: usize = 4 + 4 + QK5 / 2;

    /// Serialize to ggml's byte layout.
    pub fn pack(&self, out: &mut [u8]) {
        out[..2].copy_from_slice(&self.d.to_le_bytes());
        out[2..4].copy_from_slice(&self.m.to_le_bytes());
        out[4..8].copy_from_slice(&self.qh.to_le_bytes());
        out[8..Self::BYTES].copy_from_slice(&self.qs);
    }

    /// Parse ggml's byte layout.
    pub fn unpack(b: &[u8]) -> Self {
        BlockQ5_1 {
            d: f16::from_le_bytes([b[0], b[1]]),
            m: f16::from_le_bytes([b[2], b[3]]),
            qh: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            qs: b[8..Self::BYTES].try_into().unwrap(),
        }
    }

    /// The 5-bit code of weight `j`, 0..=31.
    pub fn code(&self, j: usize) -> u8 {
        low_nibble(&self.qs, j) | (((self.qh >> j) & 1) as u8) << 4
    }

    /// ggml's `quantize_row_q5_1_ref` for one block.
    pub fn quantize(x: &[f32]) -> Self {
        let mut min = f32::MAX;
        let mut max = -f32::MAX;
        for &v in &x[..QK5] {
            if v < min {
                min = v;
            }
            if v > max {
                max = v;
            }
        }
        let d = (max - min) / 31.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        // (uint8_t)((x - min) * id + 0.5); for finite id the argument lies in [0.5, 31.5].
        let q: [u8; QK5] = std::array::from_fn(|j| c_trunc_byte((x[j] - min) * id + 0.5));
        let (qh, qs) = split_codes(&q);
        BlockQ5_1 {
            d: f16::from_f32(d),
            m: f16::from_f32(min),
            qh,
            qs,
        }
    }

    /// ggml's `dequantize_row_q5_1` for one block (`q * d + m`, two f32 roundings).
    pub fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        let m = self.m.to_f32();
        for (j, o) in out.iter_mut().enumerate().take(QK5) {
            *o = self.code(j) as f32 * d + m;
        }
    }
}

/// Low nibbles of 32 codes in natural order, as 4 GPU code words.
fn nibble_words(code: impl Fn(usize) -> u8, codes: &mut [u32]) {
    let q: [u8; QK5] = std::array::from_fn(|j| code(j) & 15);
    for (w, chunk) in codes.iter_mut().zip(q.chunks_exact(8)) {
        *w = pack_nibbles(chunk);
    }
}

/// The Q5_0 format.
pub struct Q5_0;

impl Codec for Q5_0 {
    fn name(&self) -> String {
        "q5_0".into()
    }
    fn block_values(&self) -> usize {
        QK5
    }
    fn block_bytes(&self) -> usize {
        BlockQ5_0::BYTES
    }
    fn quantize_block(&self, x: &[f32], out: &mut [u8]) {
        BlockQ5_0::quantize(x).pack(out);
    }
    fn dequantize_block(&self, block: &[u8], out: &mut [f32]) {
        BlockQ5_0::unpack(block).dequantize(out);
    }
    fn word_values(&self) -> usize {
        8
    }
    fn param_halves(&self) -> usize {
        3
    }
    fn gpu_block(&self, block: &[u8], codes: &mut [u32], params: &mut [u16]) {
        let b = BlockQ5_0::unpack(block);
        nibble_words(|j| b.code(j), codes);
        params[0] = b.d.to_bits();
        params[1] = b.qh as u16;
        params[2] = (b.qh >> 16) as u16;
    }
    fn wgsl(&self) -> &'static str {
        include_str!("../../shaders/formats/q5_0.wgsl")
    }
    fn ggml_type(&self) -> Option<GgmlType> {
        Some(GgmlType::Q5_0)
    }
    fn chunk_param_texel(&self) -> Option<ChunkParamTexel> {
        Some(q5_0_chunk_param_texel)
    }
}

/// A Q5_0 block's texel (one chunk per block): d as f32 bits and the 32 fifth bits, whose
/// three halves straddle two words in the params plane.
fn q5_0_chunk_param_texel(p: &[u16], _chunk: usize) -> [u32; 4] {
    let d = f16::from_bits(p[0]).to_f32();
    [d.to_bits(), p[1] as u32 | (p[2] as u32) << 16, 0, 0]
}

/// The Q5_1 format.
pub struct Q5_1;

impl Codec for Q5_1 {
    fn name(&self) -> String {
        "q5_1".into()
    }
    fn block_values(&self) -> usize {
        QK5
    }
    fn block_bytes(&self) -> usize {
        BlockQ5_1::BYTES
    }
    fn quantize_block(&self, x: &[f32], out: &mut [u8]) {
        BlockQ5_1::quantize(x).pack(out);
    }
    fn dequantize_block(&self, block: &[u8], out: &mut [f32]) {
        BlockQ5_1::unpack(block).dequantize(out);
    }
    fn word_values(&self) -> usize {
        8
    }
    fn param_halves(&self) -> usize {
        4
    }
    fn gpu_block(&self, block: &[u8], codes: &mut [u32], params: &mut [u16]) {
        let b = BlockQ5_1::unpack(block);
        nibble_words(|j| b.code(j), codes);
        params[0] = b.d.to_bits();
        params[1] = b.m.to_bits();
        params[2] = b.qh as u16;
        params[3] = (b.qh >> 16) as u16;
    }
    fn wgsl(&self) -> &'static str {
        include_str!("../../shaders/formats/q5_1.wgsl")
    }
    fn ggml_type(&self) -> Option<GgmlType> {
        Some(GgmlType::Q5_1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_unpack_round_trip() {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..100 {
            let bytes: Vec<u8> = (0..24)
                .map(|_| {
                    s = s
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (s >> 56) as u8
                })
                .collect();
            let mut out = [0u8; 24];
            BlockQ5_0::unpack(&bytes).pack(&mut out);
            assert_eq!(out[..22], bytes[..22]);
            BlockQ5_1::unpack(&bytes).pack(&mut out);
            assert_eq!(out[..], bytes[..]);
        }
        assert_eq!((BlockQ5_0::BYTES, BlockQ5_1::BYTES), (22, 24));
    }

    #[test]
    fn codes_follow_ggml_bit_positions() {
        // Weight j: low nibble in qs[j % 16] (low half for j < 16), 5th bit in qh bit j.
        let b = BlockQ5_0 {
            d: f16::ONE,
            qh: 0x8001_0002,
            qs: std::array::from_fn(|j| j as u8 | (15 - j as u8) << 4),
        };
        assert_eq!(b.code(0), 0);
        assert_eq!(b.code(1), 16 + 1);
        assert_eq!(b.code(16), 15 + 16);
        assert_eq!(b.code(31), 16);
        let mut w = [0f32; 32];
        b.dequantize(&mut w);
        assert_eq!((w[0], w[1], w[16], w[31]), (-16.0, 1.0, 15.0, 0.0));
        let mut buf = [0u8; 22];
        b.pack(&mut buf);
        assert_eq!(buf[2..6], [0x02, 0x00, 0x01, 0x80]);
    }
}
