//! GGUF ternary formats TQ1_0 and TQ2_0: super-blocks of 256 weights in {-1, 0, +1},
//! times one f16 scale `d`. All multi-byte values are little-endian. In the style of
//! ggml-common.h:
//!
//! ```text
//! // TQ2_0: 2.0625 bits per weight
//! typedef struct {
//!     uint8_t   qs[QK_K/4];   // 2-bit codes, 4 per byte
//!     ggml_half d;            // scale
//! } block_tq2_0;              // 66 bytes
//!
//! // TQ1_0: 1.6875 bits per weight
//! typedef struct {
//!     uint8_t   qs[(QK_K - 4 * QK_K / 64) / 5]; // 48 bytes of 5 trits each (240 weights)
//!     uint8_t   qh[QK_K/64];                    // 4 bytes of 4 trits each (16 weights)
//!     ggml_half d;                              // scale
//! } block_tq1_0;              // 54 bytes
//! ```
//!
//! A weight is `d * (q - 1)` with `q` in 0..=2 (TQ2_0's 2-bit field can hold 3, read as
//! `2 * d`; the quantizer never writes it).
//!
//! # TQ2_0 code order
//! Weight `128 h + 32 k + l` (`h` < 2, `k` < 4, `l` < 32) is bits `2k .. 2k + 1` of
//! `qs[32 h + l]`.
//!
//! # TQ1_0 code order
//! A byte stores up to 5 trits `t0 .. t4` as the fixed-point fraction
//! `ceil((t0 * 81 + t1 * 27 + t2 * 9 + t3 * 3 + t4) * 256 / 243)`; trit `n` is read back as
//! `((byte * 3^n) mod 256) * 3 >> 8` (multiplying shifts the wanted trit to the top).
//! - weight `32 n + m` (< 160) is trit `n` of `qs[m]`, `m` < 32;
//! - weight `160 + 16 n + m` (< 240) is trit `n` of `qs[32 + m]`, `m` < 16;
//! - weight `240 + 4 n + m` is trit `n` of `qh[m]`, `m` < 4, `n` < 4 (`t4` is 0).
//!
//! # Reference quantizer (ggml's `quantize_row_tq{1,2}_0_ref`, `gguf.quants`)
//! Absmax, not the absmean rule BitNet b1.58 trains with: `d = max |x|` over the 256
//! weights, `id = 1 / d` (0 if `d` is 0), `q = round(x * id) + 1` with round half away
//! from zero, all in f32, and `d` stored as f16 (round to nearest even; inf above 65504).
//! On ternary-trained weights (every `|x|` either 0 or one value) both rules give the same
//! codes; on Gaussian weights absmax puts most weights at 0 (NMSE 0.652 on N(0,1)).
//!
//! # GPU layout (both formats)
//! Codes are `q` as 2-bit fields in natural order (16 per word: weight `16 w + j` is bits
//! `2j .. 2j + 1` of word `w`), so a chunk is 64 weights; params are one half per block,
//! the f16 bits of `d`. Both formats share `shaders/formats/tq2_0.wgsl`.

use super::{Codec, GgmlType};
use half::f16;

/// Weights per ternary super-block.
pub const QK_K: usize = 256;

/// `round(x * id) + 1` in 0..=2. A non-finite `x * id` (an f32-subnormal `d` has an
/// infinite inverse) gives 1, as ggml's and gguf's integer conversion of it ends up doing.
fn ternary_code(x: f32, id: f32) -> u8 {
    let v = x * id;
    if !v.is_finite() {
        return 1;
    }
    (v.round() as i32 + 1).clamp(0, 2) as u8
}

/// `(d, 1 / d)` of ggml's ternary quantizers: `d = max |x|`, `id = 0` when `d = 0`.
fn absmax_scale(x: &[f32]) -> (f32, f32) {
    let d = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    (d, if d != 0.0 { 1.0 / d } else { 0.0 })
}

/// `(d, 1 / d)` of the absmean rule of 1.58-bit models (BitNet b1.58): `d = mean |x|`,
/// rounded to f16 before its inverse is taken so the codes fit the stored scale.
fn absmean_scale(x: &[f32]) -> (f32, f32) {
    let mean = x.iter().map(|v| v.abs() as f64).sum::<f64>() / x.len() as f64;
    let d = f16::from_f32(mean as f32).to_f32();
    (d, if d != 0.0 { 1.0 / d } else { 0.0 })
}

/// Pack 2-bit codes (natural order, 16 per word) into GPU code words.
fn pack_crumbs(q: &[u8], codes: &mut [u32]) {
    for (w, chunk) in codes.iter_mut().zip(q.chunks_exact(16)) {
        *w = chunk
            .iter()
            .enumerate()
            .fold(0u32, |w, (j, &v)| w | ((v as u32 & 3) << (2 * j)));
    }
}

/// One TQ2_0 block, exactly as ggml lays it out (66 bytes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockTQ2_0 {
    pub qs: [u8; QK_K / 4],
    pub d: f16,
}

impl BlockTQ2_0 {
    pub const BYTES: usize = QK_K / 4 + 2;

    /// Serialize to ggml's byte layout.
    pub fn pack(&self, out: &mut [u8]) {
        out[..64].copy_from_slice(&self.qs);
        out[64..66].copy_from_slice(&self.d.to_le_bytes());
    }

    /// Parse ggml's byte layout.
    pub fn unpack(b: &[u8]) -> Self {
        BlockTQ2_0 {
            qs: b[..64].try_into().unwrap(),
            d: f16::from_le_bytes([b[64], b[65]]),
        }
    }

    /// The 2-bit code of weight `i`, 0..=3.
    pub fn code(&self, i: usize) -> u8 {
        let (h, k, l) = (i / 128, i / 32 % 4, i % 32);
        (self.qs[32 * h + l] >> (2 * k)) & 3
    }

    /// ggml's `quantize_row_tq2_0_ref` for one block (scale = max |x|).
    pub fn quantize(x: &[f32]) -> Self {
        Self::with_scale(x, absmax_scale(&x[..QK_K]))
    }

    /// The absmean rule of 1.58-bit models for one block (scale = mean |x|).
    pub fn quantize_absmean(x: &[f32]) -> Self {
        Self::with_scale(x, absmean_scale(&x[..QK_K]))
    }

    fn with_scale(x: &[f32], (d, id): (f32, f32)) -> Self {
        let mut qs = [0u8; QK_K / 4];
        for (i, &v) in x[..QK_K].iter().enumerate() {
            let (h, k, l) = (i / 128, i / 32 % 4, i % 32);
            qs[32 * h + l] |= ternary_code(v, id) << (2 * k);
        }
        BlockTQ2_0 {
            qs,
            d: f16::from_f32(d),
        }
    }

    /// ggml's `dequantize_row_tq2_0` for one block.
    pub fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        for (i, o) in out[..QK_K].iter_mut().enumerate() {
            *o = (self.code(i) as i32 - 1) as f32 * d;
        }
    }
}

/// 3^n for the trit positions of a TQ1_0 byte.
const POW3: [u8; 5] = [1, 3, 9, 27, 81];

/// Trit `n` (0 = most significant) of a TQ1_0 byte.
fn trit(byte: u8, n: usize) -> u8 {
    ((byte.wrapping_mul(POW3[n]) as u16 * 3) >> 8) as u8
}

/// A byte holding trits `t` (most significant first; 5 of them, or 4 and an implied 0).
fn pack_trits(t: impl Iterator<Item = u8>, count: usize) -> u8 {
    let mut q = t.fold(0u16, |q, v| q * 3 + v as u16);
    for _ in count..5 {
        q *= 3;
    }
    // Ceiling division: the fraction of 243 as a fraction of 256.
    (q * 256).div_ceil(243) as u8
}

/// One TQ1_0 block, exactly as ggml lays it out (54 bytes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockTQ1_0 {
    pub qs: [u8; 48],
    pub qh: [u8; 4],
    pub d: f16,
}

impl BlockTQ1_0 {
    pub const BYTES: usize = 48 + 4 + 2;

    /// Serialize to ggml's byte layout.
    pub fn pack(&self, out: &mut [u8]) {
        out[..48].copy_from_slice(&self.qs);
        out[48..52].copy_from_slice(&self.qh);
        out[52..54].copy_from_slice(&self.d.to_le_bytes());
    }

    /// Parse ggml's byte layout.
    pub fn unpack(b: &[u8]) -> Self {
        BlockTQ1_0 {
            qs: b[..48].try_into().unwrap(),
            qh: b[48..52].try_into().unwrap(),
            d: f16::from_le_bytes([b[52], b[53]]),
        }
    }

    /// The trit of weight `i`, 0..=2.
    pub fn code(&self, i: usize) -> u8 {
        match i {
            0..160 => trit(self.qs[i % 32], i / 32),
            160..240 => trit(self.qs[32 + (i - 160) % 16], (i - 160) / 16),
            _ => trit(self.qh[(i - 240) % 4], (i - 240) / 4),
        }
    }

    /// ggml's `quantize_row_tq1_0_ref` for one block (scale = max |x|).
    pub fn quantize(x: &[f32]) -> Self {
        Self::with_scale(x, absmax_scale(&x[..QK_K]))
    }

    /// The absmean rule of 1.58-bit models for one block (scale = mean |x|).
    pub fn quantize_absmean(x: &[f32]) -> Self {
        Self::with_scale(x, absmean_scale(&x[..QK_K]))
    }

    fn with_scale(x: &[f32], (d, id): (f32, f32)) -> Self {
        let q = |i: usize| ternary_code(x[i], id);
        BlockTQ1_0 {
            qs: std::array::from_fn(|m| {
                if m < 32 {
                    pack_trits((0..5).map(|n| q(32 * n + m)), 5)
                } else {
                    pack_trits((0..5).map(|n| q(160 + 16 * n + m - 32)), 5)
                }
            }),
            qh: std::array::from_fn(|m| pack_trits((0..4).map(|n| q(240 + 4 * n + m)), 4)),
            d: f16::from_f32(d),
        }
    }

    /// ggml's `dequantize_row_tq1_0` for one block.
    pub fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        for (i, o) in out[..QK_K].iter_mut().enumerate() {
            *o = (self.code(i) as i32 - 1) as f32 * d;
        }
    }
}

/// Quantize rows of `k` weights (a multiple of 256) to TQ1_0 (`tq1 = true`) or TQ2_0 with
/// the absmean rule instead of ggml's absmax one: canonical bytes, row after row.
pub fn quantize_absmean(tq1: bool, weights: &[f32]) -> Vec<u8> {
    let bytes = if tq1 {
        BlockTQ1_0::BYTES
    } else {
        BlockTQ2_0::BYTES
    };
    let mut out = vec![0u8; weights.len() / QK_K * bytes];
    for (x, o) in weights.chunks_exact(QK_K).zip(out.chunks_exact_mut(bytes)) {
        if tq1 {
            BlockTQ1_0::quantize_absmean(x).pack(o);
        } else {
            BlockTQ2_0::quantize_absmean(x).pack(o);
        }
    }
    out
}

/// The TQ1_0 format.
pub struct TQ1_0;

impl Codec for TQ1_0 {
    fn name(&self) -> String {
        "tq1_0".into()
    }
    fn block_values(&self) -> usize {
        QK_K
    }
    fn block_bytes(&self) -> usize {
        BlockTQ1_0::BYTES
    }
    fn quantize_block(&self, x: &[f32], out: &mut [u8]) {
        BlockTQ1_0::quantize(x).pack(out);
    }
    fn dequantize_block(&self, block: &[u8], out: &mut [f32]) {
        BlockTQ1_0::unpack(block).dequantize(out);
    }
    fn word_values(&self) -> usize {
        16
    }
    fn param_halves(&self) -> usize {
        1
    }
    fn gpu_block(&self, block: &[u8], codes: &mut [u32], params: &mut [u16]) {
        let b = BlockTQ1_0::unpack(block);
        let q: Vec<u8> = (0..QK_K).map(|i| b.code(i)).collect();
        pack_crumbs(&q, codes);
        params[0] = b.d.to_bits();
    }
    fn wgsl(&self) -> &'static str {
        // Same GPU layout as TQ2_0.
        include_str!("../../shaders/formats/tq2_0.wgsl")
    }
    fn ggml_type(&self) -> Option<GgmlType> {
        Some(GgmlType::TQ1_0)
    }
}

/// The TQ2_0 format.
pub struct TQ2_0;

impl Codec for TQ2_0 {
    fn name(&self) -> String {
        "tq2_0".into()
    }
    fn block_values(&self) -> usize {
        QK_K
    }
    fn block_bytes(&self) -> usize {
        BlockTQ2_0::BYTES
    }
    fn quantize_block(&self, x: &[f32], out: &mut [u8]) {
        BlockTQ2_0::quantize(x).pack(out);
    }
    fn dequantize_block(&self, block: &[u8], out: &mut [f32]) {
        BlockTQ2_0::unpack(block).dequantize(out);
    }
    fn word_values(&self) -> usize {
        16
    }
    fn param_halves(&self) -> usize {
        1
    }
    fn gpu_block(&self, block: &[u8], codes: &mut [u32], params: &mut [u16]) {
        let b = BlockTQ2_0::unpack(block);
        let q: Vec<u8> = (0..QK_K).map(|i| b.code(i)).collect();
        pack_crumbs(&q, codes);
        params[0] = b.d.to_bits();
    }
    fn wgsl(&self) -> &'static str {
        include_str!("../../shaders/formats/tq2_0.wgsl")
    }
    fn ggml_type(&self) -> Option<GgmlType> {
        Some(GgmlType::TQ2_0)
    }
}

#[cfg(test)]
mod absmean_tests {
    use super::*;

    #[test]
    fn absmean_scale_is_the_mean_magnitude_and_beats_absmax_on_gaussian_weights() {
        let x = crate::rng::Rng::new(4).normal_vec(64 * QK_K);
        let err = |bytes: &[u8], tq1: bool| {
            let mut out = vec![0f32; QK_K];
            let mut num = 0f64;
            for (xb, b) in x
                .chunks_exact(QK_K)
                .zip(bytes.chunks_exact(if tq1 { 54 } else { 66 }))
            {
                if tq1 {
                    BlockTQ1_0::unpack(b).dequantize(&mut out);
                } else {
                    BlockTQ2_0::unpack(b).dequantize(&mut out);
                }
                num += xb
                    .iter()
                    .zip(&out)
                    .map(|(a, b)| ((a - b) as f64).powi(2))
                    .sum::<f64>();
            }
            num / x.iter().map(|v| (*v as f64).powi(2)).sum::<f64>()
        };
        for tq1 in [false, true] {
            let absmean = quantize_absmean(tq1, &x);
            let e = err(&absmean, tq1);
            // Gaussian weights, ternary with the mean |w| scale: about 0.26 (absmax: 0.65).
            assert!((0.22..0.30).contains(&e), "absmean NMSE {e}");
            let b = BlockTQ2_0::quantize_absmean(&x[..QK_K]);
            let mean = x[..QK_K].iter().map(|v| v.abs() as f64).sum::<f64>() / QK_K as f64;
            assert_eq!(b.d, f16::from_f32(mean as f32));
        }
        // Both formats encode the same trits.
        let (a, b) = (
            BlockTQ1_0::quantize_absmean(&x[..QK_K]),
            BlockTQ2_0::quantize_absmean(&x[..QK_K]),
        );
        assert!((0..QK_K).all(|i| a.code(i) == b.code(i)));
    }
}
