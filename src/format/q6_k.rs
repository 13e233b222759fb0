//! GGUF Q6_K: super-blocks of 256 weights with 6-bit codes, an int8 scale per 16 weights and
//! one f16 super-block scale `d` (6.5625 bits per weight).
//!
//! # Block layout
//! In the style of ggml-common.h (210 bytes, little-endian):
//!
//! ```text
//! typedef struct {
//!     uint8_t   ql[128];     // low 4 bits of the codes
//!     uint8_t   qh[64];      // high 2 bits of the codes
//!     int8_t    scales[16];  // one scale per 16 weights
//!     ggml_half d;           // super-block scale
//! } block_q6_K;
//! ```
//!
//! The block is two halves of 128 weights; half `h` uses `ql[64h ..]` and `qh[32h ..]`.
//! Within a half, weight `32k + l` (`k < 4`, `l < 32`) has
//! - low bits: `ql[64h + l + 32 (k & 1)]`, low nibble for `k < 2`, high nibble for `k >= 2`;
//! - high bits: bits `2k, 2k + 1` of `qh[32h + l]`.
//!
//! Weight `i` is `(d * scales[i / 16]) * (q - 32)` with `q` the 6-bit code, in f32 with
//! the two roundings in that order (ggml's `dequantize_row_q6_K`). `d * scales[i / 16]` is
//! exact in f32 (11 by 8 significant bits).
//!
//! # Reference quantizer
//! A port of ggml's `quantize_row_q6_K_ref`: each sub-block of 16 gets a scale from
//! `make_qx_quants` (nmax 32, weights `x^2`, a search over 19 candidate scales), the 16
//! scales are quantized to int8 against the largest in magnitude (`d = max / -128`), and
//! the codes are recomputed from the stored scales. f32 arithmetic statement by statement
//! (no fused multiply-add), `nearest_int` by ggml's float trick (ties to even).
//!
//! # GPU layout
//! Codes plane: the low 4 bits of weight `i` in nibble `i % 8` of word `i / 8` (natural
//! order, 32 words per block). Params: 42 halves (21 words) per block, so blocks stay
//! word-aligned:
//! - words 0..16: the high 2 bits, 16 weights per word in natural order (bits `2j, 2j + 1`
//!   of word `w` belong to weight `16w + j`); a 32-weight chunk `c` reads words `2c, 2c + 1`;
//! - words 16..20: the 16 int8 scales, byte `s` of the block's scale bytes in byte `s % 4`
//!   of word `16 + s / 4`;
//! - word 20: the f16 bits of `d` in its low half, 0 in the high half.

use super::kquants::nearest_int;
use super::{pack_nibbles, ChunkParamTexel, Codec, GgmlType};
use half::f16;

/// Weights per Q6_K super-block.
pub const QK6_K: usize = 256;

/// One Q6_K block, exactly as ggml lays it out (210 bytes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ6_K {
    pub ql: [u8; QK6_K / 2],
    pub qh: [u8; QK6_K / 4],
    pub scales: [i8; QK6_K / 16],
    pub d: f16,
}

/// Params halves per block on the GPU (see the module docs).
const PARAM_HALVES: usize = 42;

/// ggml's `GROUP_MAX_EPS`: sub-blocks (and super-block scales) below it count as zero.
const GROUP_MAX_EPS: f32 = 1e-15;

impl BlockQ6_K {
    pub const BYTES: usize = QK6_K / 2 + QK6_K / 4 + QK6_K / 16 + 2;

    /// Serialize to ggml's byte layout.
    pub fn pack(&self, out: &mut [u8]) {
        out[..128].copy_from_slice(&self.ql);
        out[128..192].copy_from_slice(&self.qh);
        for (o, &s) in out[192..208].iter_mut().zip(&self.scales) {
            *o = s as u8;
        }
        out[208..210].copy_from_slice(&self.d.to_le_bytes());
    }

    /// Parse ggml's byte layout.
    pub fn unpack(b: &[u8]) -> Self {
        BlockQ6_K {
            ql: b[..128].try_into().unwrap(),
            qh: b[128..192].try_into().unwrap(),
            scales: std::array::from_fn(|i| b[192 + i] as i8),
            d: f16::from_le_bytes([b[208], b[209]]),
        }
    }

    /// The 6-bit code of weight `i`, 0..=63.
    pub fn code(&self, i: usize) -> u8 {
        let (h, k, l) = (i / 128, (i % 128) / 32, i % 32);
        let byte = self.ql[64 * h + l + 32 * (k & 1)];
        let low = if k < 2 { byte & 15 } else { byte >> 4 };
        let high = (self.qh[32 * h + l] >> (2 * k)) & 3;
        low | (high << 4)
    }

    /// Build a block from 256 codes (0..=63), the scales and `d`.
    pub fn from_codes(codes: &[u8], scales: [i8; 16], d: f16) -> Self {
        let mut ql = [0u8; 128];
        let mut qh = [0u8; 64];
        for (i, &q) in codes.iter().enumerate().take(QK6_K) {
            let (h, k, l) = (i / 128, (i % 128) / 32, i % 32);
            let lo = &mut ql[64 * h + l + 32 * (k & 1)];
            *lo |= if k < 2 { q & 15 } else { (q & 15) << 4 };
            qh[32 * h + l] |= ((q >> 4) & 3) << (2 * k);
        }
        BlockQ6_K { ql, qh, scales, d }
    }

    /// ggml's `quantize_row_q6_K_ref` for one block.
    pub fn quantize(x: &[f32]) -> Self {
        let x = &x[..QK6_K];
        // Codes 0..=63 (code - 32 is the signed value).
        let mut codes = [0u8; QK6_K];
        let mut sub_scales = [0f32; 16];
        let mut max_scale = 0f32;
        let mut max_abs_scale = 0f32;
        for (j, (xs, ls)) in x
            .chunks_exact(16)
            .zip(codes.chunks_exact_mut(16))
            .enumerate()
        {
            let s = make_qx_quants(xs, ls);
            sub_scales[j] = s;
            if s.abs() > max_abs_scale {
                max_abs_scale = s.abs();
                max_scale = s;
            }
        }
        if max_abs_scale < GROUP_MAX_EPS {
            return Self::from_codes(&[0u8; QK6_K], [0; 16], f16::ZERO);
        }
        let iscale = -128.0f32 / max_scale;
        let d = f16::from_f32(1.0 / iscale);
        // C stores the int into an int8_t: the low byte (only -128 can come from 128).
        let scales: [i8; 16] =
            std::array::from_fn(|j| nearest_int(iscale * sub_scales[j]).min(127) as i8);
        let df = d.to_f32();
        for (j, (xs, ls)) in x
            .chunks_exact(16)
            .zip(codes.chunks_exact_mut(16))
            .enumerate()
        {
            let dj = df * scales[j] as f32;
            if dj == 0.0 {
                // Keeps make_qx_quants' codes, as ggml does.
                continue;
            }
            for (&v, l) in xs.iter().zip(ls.iter_mut()) {
                *l = (nearest_int(v / dj).clamp(-32, 31) + 32) as u8;
            }
        }
        Self::from_codes(&codes, scales, d)
    }

    /// ggml's `dequantize_row_q6_K` for one block.
    pub fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        for (i, o) in out.iter_mut().enumerate().take(QK6_K) {
            let q = self.code(i) as i32 - 32;
            *o = d * self.scales[i / 16] as f32 * q as f32;
        }
    }
}

/// ggml's `make_qx_quants` with `nmax = 32`, `rmse_type = 1` (weights `x^2`) and no
/// importance weights, for one sub-block: writes codes `l + 32` and returns the scale.
fn make_qx_quants(x: &[f32], codes: &mut [u8]) -> f32 {
    const NMAX: i32 = 32;
    let mut max = 0f32;
    let mut amax = 0f32;
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        codes.fill(0);
        return 0.0;
    }
    let quant = |iscale: f32, v: f32| nearest_int(iscale * v).clamp(-NMAX, NMAX - 1);
    // Weighted sums of x*l and l^2 for a trial inverse scale.
    let sums = |iscale: f32| {
        let (mut sumlx, mut suml2) = (0f32, 0f32);
        for &v in x {
            let l = quant(iscale, v) as f32;
            let w = v * v;
            sumlx += w * v * l;
            suml2 += w * l * l;
        }
        (sumlx, suml2)
    };
    let mut iscale = -(NMAX as f32) / max;
    for (&v, c) in x.iter().zip(codes.iter_mut()) {
        *c = (quant(iscale, v) + NMAX) as u8;
    }
    let (sumlx, suml2) = sums(iscale);
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        iscale = -(NMAX as f32 + 0.1f32 * is as f32) / max;
        let (sumlx, suml2) = sums(iscale);
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for (&v, c) in x.iter().zip(codes.iter_mut()) {
                *c = (quant(iscale, v) + NMAX) as u8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// The Q6_K format.
pub struct Q6_K;

impl Codec for Q6_K {
    fn name(&self) -> String {
        "q6_k".into()
    }
    fn block_values(&self) -> usize {
        QK6_K
    }
    fn block_bytes(&self) -> usize {
        BlockQ6_K::BYTES
    }
    fn quantize_block(&self, x: &[f32], out: &mut [u8]) {
        BlockQ6_K::quantize(x).pack(out);
    }
    fn dequantize_block(&self, block: &[u8], out: &mut [f32]) {
        BlockQ6_K::unpack(block).dequantize(out);
    }
    fn word_values(&self) -> usize {
        8
    }
    fn param_halves(&self) -> usize {
        PARAM_HALVES
    }
    fn gpu_block(&self, block: &[u8], codes: &mut [u32], params: &mut [u16]) {
        let b = BlockQ6_K::unpack(block);
        let q: Vec<u8> = (0..QK6_K).map(|i| b.code(i)).collect();
        for (w, chunk) in codes.iter_mut().zip(q.chunks_exact(8)) {
            *w = pack_nibbles(chunk);
        }
        // High bits: 16 weights per word, two halves per word.
        for (w, chunk) in q.chunks_exact(16).enumerate() {
            let word = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (j, &v)| acc | ((v as u32 >> 4) << (2 * j)));
            params[2 * w] = word as u16;
            params[2 * w + 1] = (word >> 16) as u16;
        }
        for (p, s) in params[32..40].iter_mut().zip(b.scales.chunks_exact(2)) {
            *p = u16::from_le_bytes([s[0] as u8, s[1] as u8]);
        }
        params[40] = b.d.to_bits();
        params[41] = 0;
    }
    fn wgsl(&self) -> &'static str {
        include_str!("../../shaders/formats/q6_k.wgsl")
    }
    fn ggml_type(&self) -> Option<GgmlType> {
        Some(GgmlType::Q6_K)
    }
    fn chunk_param_texel(&self) -> Option<ChunkParamTexel> {
        Some(chunk_param_texel)
    }
}

/// Chunk `c`'s texel: its two words of high bits, then d times the scales of its two groups
/// of 16 as f32 bits (exact: an 11-bit by 8-bit product), what `chunk_params` computes from
/// four fetches (see `shaders/formats/q6_k.wgsl`).
fn chunk_param_texel(p: &[u16], c: usize) -> [u32; 4] {
    let word = |h: usize| p[h] as u32 | (p[h + 1] as u32) << 16;
    let d = f16::from_bits(p[40]).to_f32();
    let [s0, s1] = p[32 + c].to_le_bytes().map(|s| s as i8 as f32);
    [
        word(4 * c),
        word(4 * c + 2),
        (d * s0).to_bits(),
        (d * s1).to_bits(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_rounds_ties_to_even() {
        let cases = [
            (0.5, 0),
            (1.5, 2),
            (2.5, 2),
            (-0.5, 0),
            (-1.5, -2),
            (31.49, 31),
            (-7.7, -8),
        ];
        for (v, want) in cases {
            assert_eq!(nearest_int(v), want, "{v}");
        }
    }

    #[test]
    fn pack_unpack_round_trip() {
        let mut s = 0x1234_5678u32;
        let bytes: Vec<u8> = (0..BlockQ6_K::BYTES)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 24) as u8
            })
            .collect();
        let b = BlockQ6_K::unpack(&bytes);
        let mut out = vec![0u8; BlockQ6_K::BYTES];
        b.pack(&mut out);
        assert_eq!(out, bytes);
        let codes: Vec<u8> = (0..QK6_K).map(|i| b.code(i)).collect();
        assert_eq!(BlockQ6_K::from_codes(&codes, b.scales, b.d), b);
    }
}
