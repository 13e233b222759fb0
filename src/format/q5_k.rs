//! GGUF Q5_K: super-blocks of 256 weights in 8 sub-blocks of 32, 5-bit codes, each sub-block
//! with a 6-bit scale and a 6-bit min (packed exactly as Q4_K's, see `q4_k.rs`), scaled by
//! the super-block's f16 `d` and `dmin`.
//!
//! # Block layout
//! In the style of ggml-common.h (176 bytes, 5.5 bits per weight):
//!
//! ```text
//! typedef struct {
//!     ggml_half d;           // super-block scale of the sub-block scales
//!     ggml_half dmin;        // super-block scale of the sub-block mins
//!     uint8_t   scales[12];  // 8 pairs (sc, m) of 6-bit values, packed as in Q4_K
//!     uint8_t   qh[32];      // 5th bit of the codes
//!     uint8_t   qs[128];     // low 4 bits of the codes
//! } block_q5_K;
//! ```
//!
//! The low nibbles are arranged as Q4_K's: byte `32c + l` of `qs` holds weight `64c + l` in
//! its low nibble and weight `64c + 32 + l` in its high nibble. The 5th bit of weight
//! `32j + l` (sub-block `j`) is bit `j` of `qh[l]`.
//!
//! A weight is `w = (d * sc_j) * q - (dmin * m_j)` with `q` in `0..=31`; both products are
//! exact in f32 (11 + 6 + 5 significant bits), so only the subtraction rounds.
//!
//! # Reference quantizer
//! A port of ggml's `quantize_row_q5_K_ref`: as Q4_K's (see `q4_k.rs`) with `nmax = 31`
//! and the scale search of `make_qkx2_quants` over 16 candidates from `(31 - 0.5) / range`
//! in steps of 0.1.
//!
//! # GPU layout
//! Codes: the low 4 bits in natural order (nibble `i` of word `w` = weight `8w + i`), so a
//! vec4 chunk of 32 weights is one sub-block. Params: 24 halves (12 words) per super-block:
//! word 0 is `d | dmin << 16`, words 1..4 the 12 scale bytes as in the block, and word
//! `4 + j` the 5th bits of sub-block `j` (bit `l` = weight `32j + l`), gathered from `qh`.

use super::q4_k::{quantize_k_super_block, scale_min_k4, K_SCALE_SIZE, QK_K};
use super::{pack_nibbles, ChunkParamTexel, Codec, GgmlType};
use half::f16;

/// One Q5_K block, exactly as ggml lays it out (176 bytes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ5_K {
    pub d: f16,
    pub dmin: f16,
    pub scales: [u8; K_SCALE_SIZE],
    pub qh: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 2],
}

impl BlockQ5_K {
    pub const BYTES: usize = 4 + K_SCALE_SIZE + QK_K / 8 + QK_K / 2;

    /// Serialize to ggml's byte layout.
    pub fn pack(&self, out: &mut [u8]) {
        out[..2].copy_from_slice(&self.d.to_le_bytes());
        out[2..4].copy_from_slice(&self.dmin.to_le_bytes());
        out[4..16].copy_from_slice(&self.scales);
        out[16..48].copy_from_slice(&self.qh);
        out[48..Self::BYTES].copy_from_slice(&self.qs);
    }

    /// Parse ggml's byte layout.
    pub fn unpack(b: &[u8]) -> Self {
        BlockQ5_K {
            d: f16::from_le_bytes([b[0], b[1]]),
            dmin: f16::from_le_bytes([b[2], b[3]]),
            scales: b[4..16].try_into().unwrap(),
            qh: b[16..48].try_into().unwrap(),
            qs: b[48..Self::BYTES].try_into().unwrap(),
        }
    }

    /// The 6-bit (scale, min) of sub-block `j` (0..8).
    pub fn scale_min(&self, j: usize) -> (u8, u8) {
        scale_min_k4(&self.scales, j)
    }

    /// The 5-bit code of weight `i` (0..256), 0..=31.
    pub fn code(&self, i: usize) -> u8 {
        let byte = self.qs[32 * (i / 64) + i % 32];
        let low = if i % 64 < 32 { byte & 15 } else { byte >> 4 };
        let high = (self.qh[i % 32] >> (i / 32)) & 1;
        low | (high << 4)
    }

    /// ggml's `quantize_row_q5_K_ref` for one super-block.
    pub fn quantize(x: &[f32]) -> Self {
        let k = quantize_k_super_block(x, 31, -0.5, 15);
        let (qh, qs) = Self::pack_codes(&k.codes);
        BlockQ5_K {
            d: k.d,
            dmin: k.dmin,
            scales: k.scales,
            qh,
            qs,
        }
    }

    /// `(qh, qs)` of 256 codes (0..=31): low nibbles in ggml's chunk order, fifth bits in
    /// `qh`.
    pub fn pack_codes(codes: &[u8]) -> ([u8; QK_K / 8], [u8; QK_K / 2]) {
        let mut qs = [0u8; QK_K / 2];
        let mut qh = [0u8; QK_K / 8];
        for (i, &l) in codes.iter().enumerate().take(QK_K) {
            let byte = &mut qs[32 * (i / 64) + i % 32];
            *byte |= if i % 64 < 32 { l & 15 } else { (l & 15) << 4 };
            qh[i % 32] |= ((l >> 4) & 1) << (i / 32);
        }
        (qh, qs)
    }

    /// ggml's `dequantize_row_q5_K` for one super-block.
    pub fn dequantize(&self, out: &mut [f32]) {
        let (d, dmin) = (self.d.to_f32(), self.dmin.to_f32());
        for (j, sub) in out[..QK_K].chunks_exact_mut(32).enumerate() {
            let (sc, m) = self.scale_min(j);
            let (d1, m1) = (d * sc as f32, dmin * m as f32);
            for (l, o) in sub.iter_mut().enumerate() {
                *o = d1 * self.code(32 * j + l) as f32 - m1;
            }
        }
    }
}

/// The Q5_K format.
pub struct Q5_K;

impl Codec for Q5_K {
    fn name(&self) -> String {
        "q5_k".into()
    }
    fn block_values(&self) -> usize {
        QK_K
    }
    fn block_bytes(&self) -> usize {
        BlockQ5_K::BYTES
    }
    fn quantize_block(&self, x: &[f32], out: &mut [u8]) {
        BlockQ5_K::quantize(x).pack(out);
    }
    fn dequantize_block(&self, block: &[u8], out: &mut [f32]) {
        BlockQ5_K::unpack(block).dequantize(out);
    }
    fn word_values(&self) -> usize {
        8
    }
    fn param_halves(&self) -> usize {
        24
    }
    fn gpu_block(&self, block: &[u8], codes: &mut [u32], params: &mut [u16]) {
        let b = BlockQ5_K::unpack(block);
        let q: Vec<u8> = (0..QK_K).map(|i| b.code(i) & 15).collect();
        for (w, chunk) in codes.iter_mut().zip(q.chunks_exact(8)) {
            *w = pack_nibbles(chunk);
        }
        params[0] = b.d.to_bits();
        params[1] = b.dmin.to_bits();
        for (p, s) in params[2..8].iter_mut().zip(b.scales.chunks_exact(2)) {
            *p = u16::from_le_bytes([s[0], s[1]]);
        }
        for j in 0..8 {
            let bits = (0..32).fold(0u32, |acc, l| acc | (((b.qh[l] >> j) & 1) as u32) << l);
            params[8 + 2 * j] = bits as u16;
            params[9 + 2 * j] = (bits >> 16) as u16;
        }
    }
    fn wgsl(&self) -> &'static str {
        concat!(
            include_str!("../../shaders/formats/kquant_scales.wgsl"),
            include_str!("../../shaders/formats/q5_k.wgsl")
        )
    }
    fn ggml_type(&self) -> Option<GgmlType> {
        Some(GgmlType::Q5_K)
    }
    fn chunk_param_texel(&self) -> Option<ChunkParamTexel> {
        Some(chunk_param_texel)
    }
}

/// Sub-block `j`'s texel (one chunk per sub-block): d * scale and dmin * min as f32 bits
/// (exact: 11-bit by 6-bit products), then its word of fifth bits, what `chunk_params`
/// computes from two fetches and the 6-bit unpacking (see `shaders/formats/q5_k.wgsl`).
fn chunk_param_texel(p: &[u16], j: usize) -> [u32; 4] {
    let scales: [u8; K_SCALE_SIZE] = std::array::from_fn(|i| p[2 + i / 2].to_le_bytes()[i % 2]);
    let (sc, m) = scale_min_k4(&scales, j);
    let (d, dmin) = (f16::from_bits(p[0]).to_f32(), f16::from_bits(p[1]).to_f32());
    let h = p[8 + 2 * j] as u32 | (p[9 + 2 * j] as u32) << 16;
    [(d * sc as f32).to_bits(), (dmin * m as f32).to_bits(), h, 0]
}
