//! GGUF Q2_K: super-blocks of 256 weights with 2-bit codes, sub-blocks of 16 with a 4-bit
//! scale and a 4-bit min each, and f16 super-block scales `d` and `dmin` (2.625 bits per
//! weight).
//!
//! # Block layout
//! In the style of ggml-common.h (84 bytes, little-endian):
//!
//! ```text
//! typedef struct {
//!     uint8_t   scales[16];  // low nibble: scale, high nibble: min, per 16 weights
//!     uint8_t   qs[64];      // 2-bit codes
//!     ggml_half d;           // super-block scale of the scales
//!     ggml_half dmin;        // super-block scale of the mins
//! } block_q2_K;
//! ```
//!
//! The block is two halves of 128 weights; half `h` uses `qs[32h .. 32h + 32]`: weight
//! `128h + 32k + l` (`k < 4`, `l < 32`) is bits `2k, 2k + 1` of `qs[32h + l]`.
//!
//! Weight `i` with `sc = scales[i / 16]` is `(d * (sc & 15)) * q - dmin * (sc >> 4)`, in f32
//! with the roundings in that order (ggml's `dequantize_row_q2_K`). `d * (sc & 15)` has at
//! most 15 significant bits, so its product with `q <= 3` is exact and a fused multiply-add
//! gives the same result.
//!
//! # Reference quantizer
//! A port of ggml's `quantize_row_q2_K_ref`: each sub-block of 16 gets a scale and a min
//! from `make_qkx2_quants` (nmax 3, weights `|x|`, mean absolute error, 16 candidate
//! scales from `(2.5 + 0.1 is) / (max - min)` with a least-squares refit of scale and min);
//! scales and mins are quantized to 4 bits against their maxima (`d = max_scale / 15`,
//! `dmin = max_min / 15`) and the codes recomputed from the stored values. f32 arithmetic
//! statement by statement (no fused multiply-add), `nearest_int` ties to even.
//!
//! # GPU layout
//! Codes plane: the 2-bit code of weight `i` in bits `2 (i % 16)` of word `i / 16` (natural
//! order, 16 words per block; a 64-weight chunk is 4 sub-blocks). Params: 10 halves (5
//! words) per block: word `c < 4` holds the scale bytes `4c .. 4c + 4` (those of chunk `c`
//! of the block, byte `s % 4` of the word), word 4 holds `d` (low half) and `dmin`.

use super::kquants::{make_qkx2_quants, nearest_int, SearchError};
use super::{ChunkParamTexel, Codec, GgmlType};
use half::f16;

/// Weights per Q2_K super-block.
pub const QK2_K: usize = 256;

/// Params halves per block on the GPU (see the module docs).
const PARAM_HALVES: usize = 10;

/// One Q2_K block, exactly as ggml lays it out (84 bytes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ2_K {
    pub scales: [u8; QK2_K / 16],
    pub qs: [u8; QK2_K / 4],
    pub d: f16,
    pub dmin: f16,
}

impl BlockQ2_K {
    pub const BYTES: usize = QK2_K / 16 + QK2_K / 4 + 4;

    /// Serialize to ggml's byte layout.
    pub fn pack(&self, out: &mut [u8]) {
        out[..16].copy_from_slice(&self.scales);
        out[16..80].copy_from_slice(&self.qs);
        out[80..82].copy_from_slice(&self.d.to_le_bytes());
        out[82..84].copy_from_slice(&self.dmin.to_le_bytes());
    }

    /// Parse ggml's byte layout.
    pub fn unpack(b: &[u8]) -> Self {
        BlockQ2_K {
            scales: b[..16].try_into().unwrap(),
            qs: b[16..80].try_into().unwrap(),
            d: f16::from_le_bytes([b[80], b[81]]),
            dmin: f16::from_le_bytes([b[82], b[83]]),
        }
    }

    /// The 2-bit code of weight `i`, 0..=3.
    pub fn code(&self, i: usize) -> u8 {
        let (h, k, l) = (i / 128, (i % 128) / 32, i % 32);
        (self.qs[32 * h + l] >> (2 * k)) & 3
    }

    /// Pack 256 codes (0..=3) into `qs`.
    fn pack_codes(codes: &[u8]) -> [u8; QK2_K / 4] {
        let mut qs = [0u8; QK2_K / 4];
        for (i, &q) in codes.iter().enumerate().take(QK2_K) {
            let (h, k, l) = (i / 128, (i % 128) / 32, i % 32);
            qs[32 * h + l] |= (q & 3) << (2 * k);
        }
        qs
    }

    /// ggml's `quantize_row_q2_K_ref` for one block.
    pub fn quantize(x: &[f32]) -> Self {
        let x = &x[..QK2_K];
        let mut codes = [0u8; QK2_K];
        let mut sub_scales = [0f32; 16];
        let mut sub_mins = [0f32; 16];
        let mut max_scale = 0f32;
        let mut max_min = 0f32;
        for (j, (xs, ls)) in x
            .chunks_exact(16)
            .zip(codes.chunks_exact_mut(16))
            .enumerate()
        {
            let weights: [f32; 16] = std::array::from_fn(|l| xs[l].abs());
            let (scale, min) =
                make_qkx2_quants(xs, &weights, 3, -0.5, 15, ls, SearchError::Absolute);
            sub_scales[j] = scale;
            sub_mins[j] = min;
            if scale > max_scale {
                max_scale = scale;
            }
            if min > max_min {
                max_min = min;
            }
        }
        let mut scales = [0u8; 16];
        let mut d = f16::ZERO;
        if max_scale > 0.0 {
            let iscale = 15.0f32 / max_scale;
            for (s, &v) in scales.iter_mut().zip(&sub_scales) {
                // C stores the int into a uint8_t: the low byte.
                *s = nearest_int(iscale * v) as u8;
            }
            d = f16::from_f32(max_scale / 15.0);
        }
        let mut dmin = f16::ZERO;
        if max_min > 0.0 {
            let iscale = 15.0f32 / max_min;
            for (s, &v) in scales.iter_mut().zip(&sub_mins) {
                *s |= (nearest_int(iscale * v) << 4) as u8;
            }
            dmin = f16::from_f32(max_min / 15.0);
        }
        let (df, mf) = (d.to_f32(), dmin.to_f32());
        for (j, (xs, ls)) in x
            .chunks_exact(16)
            .zip(codes.chunks_exact_mut(16))
            .enumerate()
        {
            let dj = df * (scales[j] & 15) as f32;
            if dj == 0.0 {
                // Keeps make_qkx2_quants' codes, as ggml does.
                continue;
            }
            let mj = mf * (scales[j] >> 4) as f32;
            for (&v, l) in xs.iter().zip(ls.iter_mut()) {
                *l = nearest_int((v + mj) / dj).clamp(0, 3) as u8;
            }
        }
        BlockQ2_K {
            scales,
            qs: Self::pack_codes(&codes),
            d,
            dmin,
        }
    }

    /// ggml's `dequantize_row_q2_K` for one block.
    pub fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        let dmin = self.dmin.to_f32();
        for (i, o) in out.iter_mut().enumerate().take(QK2_K) {
            let sc = self.scales[i / 16];
            let dl = d * (sc & 15) as f32;
            let ml = dmin * (sc >> 4) as f32;
            *o = dl * self.code(i) as f32 - ml;
        }
    }
}

/// The Q2_K format.
pub struct Q2_K;

impl Codec for Q2_K {
    fn name(&self) -> String {
        "q2_k".into()
    }
    fn block_values(&self) -> usize {
        QK2_K
    }
    fn block_bytes(&self) -> usize {
        BlockQ2_K::BYTES
    }
    fn quantize_block(&self, x: &[f32], out: &mut [u8]) {
        BlockQ2_K::quantize(x).pack(out);
    }
    fn dequantize_block(&self, block: &[u8], out: &mut [f32]) {
        BlockQ2_K::unpack(block).dequantize(out);
    }
    fn word_values(&self) -> usize {
        16
    }
    fn param_halves(&self) -> usize {
        PARAM_HALVES
    }
    fn gpu_block(&self, block: &[u8], codes: &mut [u32], params: &mut [u16]) {
        let b = BlockQ2_K::unpack(block);
        for (w, word) in codes.iter_mut().enumerate() {
            *word = (0..16).fold(0u32, |acc, j| {
                acc | ((b.code(16 * w + j) as u32) << (2 * j))
            });
        }
        for (p, s) in params[..8].iter_mut().zip(b.scales.chunks_exact(2)) {
            *p = u16::from_le_bytes([s[0], s[1]]);
        }
        params[8] = b.d.to_bits();
        params[9] = b.dmin.to_bits();
    }
    fn wgsl(&self) -> &'static str {
        include_str!("../../shaders/formats/q2_k.wgsl")
    }
    fn ggml_type(&self) -> Option<GgmlType> {
        Some(GgmlType::Q2_K)
    }
    fn chunk_param_texel(&self) -> Option<ChunkParamTexel> {
        Some(chunk_param_texel)
    }
}

/// Chunk `c`'s texel (64 weights, four sub-blocks): its four scale bytes, then d | dmin << 16,
/// two words the params plane keeps apart.
fn chunk_param_texel(p: &[u16], c: usize) -> [u32; 4] {
    let word = |h: usize| p[h] as u32 | (p[h + 1] as u32) << 16;
    [word(2 * c), word(8), 0, 0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_unpack_round_trip() {
        let mut s = 0x9abc_def0u32;
        let bytes: Vec<u8> = (0..BlockQ2_K::BYTES)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 24) as u8
            })
            .collect();
        let b = BlockQ2_K::unpack(&bytes);
        let mut out = vec![0u8; BlockQ2_K::BYTES];
        b.pack(&mut out);
        assert_eq!(out, bytes);
        let codes: Vec<u8> = (0..QK2_K).map(|i| b.code(i)).collect();
        assert_eq!(BlockQ2_K::pack_codes(&codes), b.qs);
    }

    #[test]
    fn make_qkx2_quants_constant_and_positive() {
        let mut codes = [9u8; 16];
        // A constant positive sub-block: min clamps to 0, the scale fits the value.
        let x = [2.0f32; 16];
        let (scale, min) = make_qkx2_quants(&x, &x, 3, -0.5, 15, &mut codes, SearchError::Absolute);
        assert_eq!(min, 0.0);
        assert!(codes.iter().all(|&c| c == 3));
        assert_eq!(scale * 3.0, 2.0);
        // All zeros: nothing to fit.
        let z = [0f32; 16];
        assert_eq!(
            make_qkx2_quants(&z, &z, 3, -0.5, 15, &mut codes, SearchError::Absolute),
            (0.0, 0.0)
        );
        assert!(codes.iter().all(|&c| c == 0));
    }
}
