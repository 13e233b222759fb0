//! GGUF Q4_K: super-blocks of 256 weights in 8 sub-blocks of 32, each sub-block with a
//! 6-bit scale and a 6-bit min, scaled by the super-block's f16 `d` and `dmin`.
//!
//! # Block layout
//! In the style of ggml-common.h (144 bytes, 4.5 bits per weight):
//!
//! ```text
//! typedef struct {
//!     ggml_half d;           // super-block scale of the sub-block scales
//!     ggml_half dmin;        // super-block scale of the sub-block mins
//!     uint8_t   scales[12];  // 8 pairs (sc, m) of 6-bit values, packed as below
//!     uint8_t   qs[128];     // 4-bit codes
//! } block_q4_K;
//! ```
//!
//! Sub-block `j` (weights `32j .. 32j + 31`) has scale `sc_j` and min `m_j`:
//! - `j < 4`: `sc_j = scales[j] & 63`, `m_j = scales[j + 4] & 63`;
//! - `j >= 4`: `sc_j = (scales[j + 4] & 15) | (scales[j - 4] >> 6) << 4`,
//!   `m_j = (scales[j + 4] >> 4) | (scales[j] >> 6) << 4`.
//!
//! So bytes 0..4 hold the low 6 bits of `sc_0..3` and bytes 4..8 those of `m_0..3`; their top
//! two bits carry bits 4..5 of `sc_4..7` and `m_4..7`, whose low nibbles fill bytes 8..12.
//!
//! Codes come in 64-weight chunks: chunk `c` uses `qs[32c .. 32c + 31]`; byte `32c + l` holds
//! weight `64c + l` (sub-block `2c`) in its low nibble and weight `64c + 32 + l` (sub-block
//! `2c + 1`) in its high nibble.
//!
//! A weight is `w = (d * sc_j) * q - (dmin * m_j)`, each product rounded to f32 (as ggml's
//! `dequantize_row_q4_K`). Both products are exact (11-bit f16 times a 6-bit integer, then
//! times a 4-bit code), so only the subtraction rounds, on the CPU and in the shader alike.
//!
//! # Reference quantizer
//! A port of ggml's `quantize_row_q4_K_ref` (f32 arithmetic, no FMA contraction):
//! per sub-block, importance weights `sqrt(mean x^2) + |x|` and [`make_qkx2_quants`]
//! (a search over 21 candidate scales, each refined by weighted least squares for scale and
//! min, min kept <= 0); then `d = f16(max sc / 63)`, `dmin = f16(max m / 63)`, the 6-bit
//! `sc_j = min(63, nearest(63 sc_j / max sc))` (likewise `m_j`), and every code requantized
//! against the stored scales: `q = clamp(nearest((x + dmin m_j) / (d sc_j)), 0, 15)`.
//! A sub-block whose stored scale is 0 keeps the codes of the search.
//!
//! # GPU layout
//! Codes in natural order (nibble `i` of word `w` = weight `8w + i`), so a vec4 chunk of 32
//! weights is exactly one sub-block: chunk `c` of a row is sub-block `c % 8` of super-block
//! `c / 8`. Params: 8 halves (4 words) per super-block, the first word `d | dmin << 16`, then
//! the 12 scale bytes as they are in the block (little-endian words). The shader decodes
//! `sc_j` and `m_j` of its chunk from those bytes.

use super::kquants::{make_qkx2_quants, nearest_int, SearchError};
use super::{pack_nibbles, Codec, GgmlType};
use half::f16;

/// Weights per K-quant super-block.
pub const QK_K: usize = 256;
/// Bytes of packed 6-bit sub-block scales and mins in Q4_K and Q5_K.
pub const K_SCALE_SIZE: usize = 12;

/// One Q4_K block, exactly as ggml lays it out (144 bytes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ4_K {
    pub d: f16,
    pub dmin: f16,
    pub scales: [u8; K_SCALE_SIZE],
    pub qs: [u8; QK_K / 2],
}

impl BlockQ4_K {
    pub const BYTES: usize = 4 + K_SCALE_SIZE + QK_K / 2;

    /// Serialize to ggml's byte layout.
    pub fn pack(&self, out: &mut [u8]) {
        out[..2].copy_from_slice(&self.d.to_le_bytes());
        out[2..4].copy_from_slice(&self.dmin.to_le_bytes());
        out[4..16].copy_from_slice(&self.scales);
        out[16..Self::BYTES].copy_from_slice(&self.qs);
    }

    /// Parse ggml's byte layout.
    pub fn unpack(b: &[u8]) -> Self {
        BlockQ4_K {
            d: f16::from_le_bytes([b[0], b[1]]),
            dmin: f16::from_le_bytes([b[2], b[3]]),
            scales: b[4..16].try_into().unwrap(),
            qs: b[16..Self::BYTES].try_into().unwrap(),
        }
    }

    /// The 6-bit (scale, min) of sub-block `j` (0..8).
    pub fn scale_min(&self, j: usize) -> (u8, u8) {
        scale_min_k4(&self.scales, j)
    }

    /// The 4-bit code of weight `i` (0..256), 0..=15.
    pub fn code(&self, i: usize) -> u8 {
        let byte = self.qs[32 * (i / 64) + i % 32];
        if i % 64 < 32 {
            byte & 15
        } else {
            byte >> 4
        }
    }

    /// ggml's `quantize_row_q4_K_ref` for one super-block.
    pub fn quantize(x: &[f32]) -> Self {
        let k = quantize_k_super_block(x, 15, -1.0, 20);
        BlockQ4_K {
            d: k.d,
            dmin: k.dmin,
            scales: k.scales,
            qs: Self::pack_codes(&k.codes),
        }
    }

    /// `qs` of 256 codes (0..=15) in ggml's chunk order.
    pub fn pack_codes(codes: &[u8]) -> [u8; QK_K / 2] {
        let mut qs = [0u8; QK_K / 2];
        for (i, &l) in codes.iter().enumerate().take(QK_K) {
            let byte = &mut qs[32 * (i / 64) + i % 32];
            *byte |= if i % 64 < 32 { l & 15 } else { (l & 15) << 4 };
        }
        qs
    }

    /// ggml's `dequantize_row_q4_K` for one super-block.
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

/// ggml's `get_scale_min_k4`: the 6-bit (scale, min) of sub-block `j` from the 12 packed bytes.
pub(crate) fn scale_min_k4(s: &[u8; K_SCALE_SIZE], j: usize) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

/// Pack 8 6-bit (scale, min) pairs into the 12 bytes [`scale_min_k4`] reads.
pub(crate) fn pack_scale_min_k4(ls: &[u8; 8], lm: &[u8; 8]) -> [u8; K_SCALE_SIZE] {
    let mut s = [0u8; K_SCALE_SIZE];
    for j in 0..8 {
        let (sc, m) = (ls[j] & 63, lm[j] & 63);
        if j < 4 {
            s[j] |= sc;
            s[j + 4] |= m;
        } else {
            s[j + 4] = (sc & 15) | ((m & 15) << 4);
            s[j - 4] |= (sc >> 4) << 6;
            s[j] |= (m >> 4) << 6;
        }
    }
    s
}

/// A quantized K-quant super-block with 6-bit scale/min pairs (Q4_K, Q5_K), before the
/// codes are packed.
pub(crate) struct KSuperBlock {
    pub d: f16,
    pub dmin: f16,
    pub scales: [u8; K_SCALE_SIZE],
    /// Codes `0..=nmax` in natural order.
    pub codes: [u8; QK_K],
}

/// The shared body of ggml's `quantize_row_q4_K_ref` (`nmax` 15, `rmin` -1, 20 steps) and
/// `quantize_row_q5_K_ref` (`nmax` 31, `rmin` -0.5, 15 steps).
pub(crate) fn quantize_k_super_block(x: &[f32], nmax: i32, rmin: f32, nstep: i32) -> KSuperBlock {
    let x = &x[..QK_K];
    let mut codes = [0u8; QK_K];
    let mut scales = [0f32; 8];
    let mut mins = [0f32; 8];
    let mut max_scale = 0.0f32;
    let mut max_min = 0.0f32;
    for j in 0..8 {
        let xs = &x[32 * j..32 * j + 32];
        let mut sum_x2 = 0.0f32;
        for &v in xs {
            sum_x2 += v * v;
        }
        let av_x = (sum_x2 / 32.0).sqrt();
        let mut weights = [0f32; 32];
        for (w, &v) in weights.iter_mut().zip(xs) {
            *w = av_x + v.abs();
        }
        let (s, m) = make_qkx2_quants(
            xs,
            &weights,
            nmax,
            rmin,
            nstep,
            &mut codes[32 * j..32 * j + 32],
            SearchError::Squared,
        );
        scales[j] = s;
        mins[j] = m;
        if s > max_scale {
            max_scale = s;
        }
        if m > max_min {
            max_min = m;
        }
    }
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    // C stores the int in a uint8_t (wrapping) before taking MIN(63, .).
    let ls: [u8; 8] = std::array::from_fn(|j| (nearest_int(inv_scale * scales[j]) as u8).min(63));
    let lm: [u8; 8] = std::array::from_fn(|j| (nearest_int(inv_min * mins[j]) as u8).min(63));
    let scales = pack_scale_min_k4(&ls, &lm);
    let d = f16::from_f32(max_scale / 63.0);
    let dmin = f16::from_f32(max_min / 63.0);
    for j in 0..8 {
        let (sc, m) = scale_min_k4(&scales, j);
        let dj = d.to_f32() * sc as f32;
        if dj == 0.0 {
            continue;
        }
        let dm = dmin.to_f32() * m as f32;
        for i in 32 * j..32 * j + 32 {
            codes[i] = nearest_int((x[i] + dm) / dj).clamp(0, nmax) as u8;
        }
    }
    KSuperBlock {
        d,
        dmin,
        scales,
        codes,
    }
}

/// The Q4_K format.
pub struct Q4_K;

impl Codec for Q4_K {
    fn name(&self) -> String {
        "q4_k".into()
    }
    fn block_values(&self) -> usize {
        QK_K
    }
    fn block_bytes(&self) -> usize {
        BlockQ4_K::BYTES
    }
    fn quantize_block(&self, x: &[f32], out: &mut [u8]) {
        BlockQ4_K::quantize(x).pack(out);
    }
    fn dequantize_block(&self, block: &[u8], out: &mut [f32]) {
        BlockQ4_K::unpack(block).dequantize(out);
    }
    fn word_values(&self) -> usize {
        8
    }
    fn param_halves(&self) -> usize {
        8
    }
    fn gpu_block(&self, block: &[u8], codes: &mut [u32], params: &mut [u16]) {
        let b = BlockQ4_K::unpack(block);
        let q: Vec<u8> = (0..QK_K).map(|i| b.code(i)).collect();
        for (w, chunk) in codes.iter_mut().zip(q.chunks_exact(8)) {
            *w = pack_nibbles(chunk);
        }
        params[0] = b.d.to_bits();
        params[1] = b.dmin.to_bits();
        for (p, s) in params[2..8].iter_mut().zip(b.scales.chunks_exact(2)) {
            *p = u16::from_le_bytes([s[0], s[1]]);
        }
    }
    fn wgsl(&self) -> &'static str {
        concat!(
            include_str!("../../shaders/formats/kquant_scales.wgsl"),
            include_str!("../../shaders/formats/q4_k.wgsl")
        )
    }
    fn ggml_type(&self) -> Option<GgmlType> {
        Some(GgmlType::Q4_K)
    }
}
