//! GGUF IQ4_NL: blocks of 32 weights, one f16 scale `d` and 16 bytes of 4-bit indices into
//! a fixed non-linear grid of 16 int8 values (denser near zero, like a normal's quantiles).
//!
//! # Block layout
//! In the style of ggml-common.h (little-endian, no padding):
//!
//! ```text
//! // IQ4_NL: 18 bytes, 4.5 bits per weight (the Q4_0 layout)
//! typedef struct {
//!     ggml_half d;           // scale
//!     uint8_t   qs[16];      // byte j: low nibble = weight j, high nibble = weight j + 16
//! } block_iq4_nl;            // w = d * kvalues_iq4nl[q]
//!
//! static const int8_t kvalues_iq4nl[16] =
//!     {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
//! ```
//!
//! Dequantization is ggml's `dequantize_row_iq4_nl`: `d as f32 * kv as f32`, exact (an f16
//! times an integer below 2^7), so the shader's product has the same bits.
//!
//! # Quantizer
//! ggml's `quantize_row_iq4_nl_impl` for one block of 32 with no importance matrix, so the
//! error weights are `w_j = x_j^2`. `nearest(v)` is the grid index nearest to `v` (ties go
//! up; decided exactly as `2v >= kv[i-1] + kv[i]`). `max` is the value of largest
//! magnitude, sign kept (the first wins ties); blocks with `|max| < 1e-15` get `d = 0`.
//! 1. Start with `id = -127 / max` (the extreme weight on `kv[0] = -127`) if `ntry < 0`, or
//!    `id = 127 / max` if `ntry > 0`; take `q_j = nearest(id * x_j)` and the weighted
//!    least-squares scale `d = sum(w kv[q] x) / sum(w kv[q]^2)`.
//! 2. For `t = -ntry ..= ntry`: with `id = (t - 127) / max` do the same and keep that `d`
//!    where it explains more of the block (`sumqx^2 / sumq2` larger, strictly).
//! 3. Store `f16(d)`. With `ntry > 0` the indices are then recomputed as
//!    `nearest(x_j / d)` with the f32 `d` (with `ntry < 0` they stay those of step 1).
//!
//! All arithmetic is f32 in ggml's order, without fused multiply-add.
//! [`BlockIQ4_NL::quantize`] (the codec's quantizer) uses `ntry = 7`: ggml's
//! `quantize_iq4_nl`, which is what `llama-quantize` writes when given no importance
//! matrix. [`BlockIQ4_NL::quantize_ref`] uses `ntry = -1`: ggml's
//! `quantize_row_iq4_nl_ref` (no search, one least-squares refit of the scale).
//!
//! # GPU layout
//! As Q4_0: codes are the indices in natural order; one param half per block, `d`. The
//! grid is a WGSL `const` of 16 int8 packed in a `vec4<u32>` (see the shader for why).

use super::q4_0::Block4x32;
use super::{Codec, GgmlType};
use half::f16;

/// Weights per IQ4_NL block.
pub const QK4_NL: usize = 32;

/// ggml's `kvalues_iq4nl`: the grid a 4-bit index selects.
pub const KVALUES_IQ4NL: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

/// The index of the grid value nearest to `x` (ties toward the larger value): a branchless
/// binary search on midpoints, compared as `2x >= kv[i-1] + kv[i]` so both sides are exact.
pub fn nearest_index(x: f32) -> u8 {
    let x2 = x + x;
    let mut idx = 0usize;
    let mut step = 8;
    while step > 0 {
        let j = idx + step;
        if x2 >= (KVALUES_IQ4NL[j - 1] as i32 + KVALUES_IQ4NL[j] as i32) as f32 {
            idx = j;
        }
        step >>= 1;
    }
    idx as u8
}

/// `GRID` of [`BlockIQ4_NL`]: [`KVALUES_IQ4NL`].
pub const GRID_IQ4NL: u8 = 1;

/// One IQ4_NL block, exactly as ggml lays it out (18 bytes): Q4_0's layout, where `code(j)`
/// is the grid index of weight `j`.
pub type BlockIQ4_NL = Block4x32<GRID_IQ4NL>;

impl BlockIQ4_NL {
    /// ggml's `quantize_iq4_nl` (no importance matrix, 7 scale trials each side).
    pub fn quantize(x: &[f32]) -> Self {
        Self::quantize_ntry(x, 7)
    }

    /// ggml's `quantize_row_iq4_nl_ref` (no scale search). Unused by the codec, kept as
    /// the reference point for the NMSE comparison in the tests.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn quantize_ref(x: &[f32]) -> Self {
        Self::quantize_ntry(x, -1)
    }

    /// ggml's `quantize_row_iq4_nl_impl` for one 32-block with `ntry` scale trials.
    fn quantize_ntry(x: &[f32], ntry: i32) -> Self {
        let x = &x[..QK4_NL];
        let weight: [f32; QK4_NL] = std::array::from_fn(|j| x[j] * x[j]);
        let (d, l) = Self::search(x, &weight, ntry);
        BlockIQ4_NL {
            d: f16::from_f32(d),
            qs: std::array::from_fn(|j| l[j] | (l[j + 16] << 4)),
        }
    }

    /// The scale ggml's `quantize_row_iq4_nl_impl` chooses for one 32-block with error
    /// weights `weight` (`x^2` without an importance matrix; with one, llama.cpp passes
    /// `imatrix_j * sqrt(sigma2 + x_j^2)`) and `ntry` scale trials, as the f32 value the
    /// codes are then taken with (`nearest(x / d)`; the block stores `f16(d)`).
    pub fn search_scale(x: &[f32], weight: &[f32], ntry: i32) -> f32 {
        Self::search(&x[..QK4_NL], &weight[..QK4_NL], ntry).0
    }

    /// The scale and, for `ntry < 0`, the indices of its first trial (ggml keeps those).
    fn search(x: &[f32], weight: &[f32], ntry: i32) -> (f32, [u8; QK4_NL]) {
        let mut amax = 0.0f32;
        let mut max = 0.0f32;
        for &v in x {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        let mut l = [0u8; QK4_NL];
        let mut d = 0.0f32;
        if amax >= 1e-15 {
            // (sum w q x, sum w q^2) for the indices nearest to id * x.
            let sums = |id: f32, l: Option<&mut [u8; QK4_NL]>| {
                let (mut sumqx, mut sumq2) = (0.0f32, 0.0f32);
                let mut codes = [0u8; QK4_NL];
                for j in 0..QK4_NL {
                    codes[j] = nearest_index(id * x[j]);
                    let q = KVALUES_IQ4NL[codes[j] as usize] as f32;
                    sumqx += weight[j] * q * x[j];
                    sumq2 += weight[j] * q * q;
                }
                if let Some(l) = l {
                    *l = codes;
                }
                (sumqx, sumq2)
            };
            let kv0 = KVALUES_IQ4NL[0] as f32;
            let d0 = if ntry > 0 { -max / kv0 } else { max / kv0 };
            let (sumqx, sumq2) = sums(1.0 / d0, Some(&mut l));
            d = if sumq2 > 0.0 { sumqx / sumq2 } else { 0.0 };
            let mut best = d * sumqx;
            for itry in -ntry..=ntry {
                let id = (itry + KVALUES_IQ4NL[0] as i32) as f32 / max;
                let (sumqx, sumq2) = sums(id, None);
                if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
                    d = sumqx / sumq2;
                    best = d * sumqx;
                }
            }
        }
        if ntry > 0 {
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            for (lj, &xj) in l.iter_mut().zip(x) {
                *lj = nearest_index(id * xj);
            }
        }
        (d, l)
    }

    /// ggml's `dequantize_row_iq4_nl` for one block.
    pub fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        for (j, o) in out.iter_mut().enumerate().take(QK4_NL) {
            *o = d * KVALUES_IQ4NL[self.code(j) as usize] as f32;
        }
    }
}

/// The IQ4_NL format.
pub struct IQ4_NL;

impl Codec for IQ4_NL {
    fn name(&self) -> String {
        "iq4_nl".into()
    }
    fn block_values(&self) -> usize {
        QK4_NL
    }
    fn block_bytes(&self) -> usize {
        BlockIQ4_NL::BYTES
    }
    fn quantize_block(&self, x: &[f32], out: &mut [u8]) {
        BlockIQ4_NL::quantize(x).pack(out);
    }
    fn dequantize_block(&self, block: &[u8], out: &mut [f32]) {
        BlockIQ4_NL::unpack(block).dequantize(out);
    }
    fn word_values(&self) -> usize {
        8
    }
    fn param_halves(&self) -> usize {
        1
    }
    fn gpu_block(&self, block: &[u8], codes: &mut [u32], params: &mut [u16]) {
        BlockIQ4_NL::gpu_block(block, codes, params);
    }
    fn wgsl(&self) -> &'static str {
        concat!(
            include_str!("../../shaders/formats/int8_table.wgsl"),
            include_str!("../../shaders/formats/iq4_nl.wgsl")
        )
    }
    fn ggml_type(&self) -> Option<GgmlType> {
        Some(GgmlType::IQ4_NL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_index_is_nearest_with_ties_up() {
        for i in -300..=300 {
            let x = i as f32 * 0.5;
            let got = nearest_index(x) as usize;
            let dist = |k: usize| (KVALUES_IQ4NL[k] as f32 - x).abs();
            let best = (0..16).map(dist).fold(f32::INFINITY, f32::min);
            assert_eq!(dist(got), best, "x = {x}");
            // On a tie, the larger grid value.
            assert!(got == 15 || dist(got + 1) > best, "x = {x}");
        }
    }

    #[test]
    fn pack_unpack_and_code_order() {
        let b = BlockIQ4_NL {
            d: f16::from_f32(0.5),
            qs: std::array::from_fn(|j| j as u8 | (15 - j as u8) << 4),
        };
        let mut buf = [0u8; 18];
        b.pack(&mut buf);
        assert_eq!(BlockIQ4_NL::unpack(&buf), b);
        let mut w = [0f32; 32];
        b.dequantize(&mut w);
        assert_eq!((w[0], w[15], w[16], w[31]), (-63.5, 56.5, 56.5, -63.5));
    }

    #[test]
    fn extreme_weight_lands_on_the_grid_end() {
        let mut x = [0.01f32; 32];
        x[5] = -2.0;
        x[9] = 1.9;
        for b in [BlockIQ4_NL::quantize(&x), BlockIQ4_NL::quantize_ref(&x)] {
            let mut w = [0f32; 32];
            b.dequantize(&mut w);
            assert!(
                (w[5] + 2.0).abs() < 0.1 && (w[9] - 1.9).abs() < 0.2,
                "{w:?}"
            );
        }
    }
}

#[cfg(test)]
mod golden {
    use super::*;

    /// ggml's `quantize_row_iq4_nl_ref` (ntry = -1) against the numpy port in
    /// scripts/golden_legacy.py (key "iq4_nl_ref"); the codec's ntry = 7 quantizer is
    /// checked in tests/formats_legacy.rs.
    #[test]
    fn reference_quantizer_matches_golden() {
        let g: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/data/golden_legacy.json")).unwrap();
        let mut checked = 0;
        for case in g["cases"].as_array().unwrap() {
            let x: Vec<f32> = case["x"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| f32::from_bits(v.as_u64().unwrap() as u32))
                .collect();
            let hex = case["blocks"]["iq4_nl_ref"].as_str().unwrap();
            let want: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            for (b, (xb, wb)) in x.chunks_exact(32).zip(want.chunks_exact(18)).enumerate() {
                let mut got = [0u8; 18];
                BlockIQ4_NL::quantize_ref(xb).pack(&mut got);
                assert_eq!(got[..], wb[..], "{} block {b}", case["name"]);
                checked += 1;
            }
        }
        assert!(checked > 50);
    }

    /// The search lowers the error of the no-search reference (6.18e-3 -> 5.79e-3 on
    /// 2^20 N(0,1) values in the script; here on 2^16).
    #[test]
    fn search_beats_reference() {
        let x = crate::rng::Rng::new(77).normal_vec(1 << 16);
        let err = |q: fn(&[f32]) -> BlockIQ4_NL| {
            let mut e = 0f64;
            for xb in x.chunks_exact(32) {
                let mut w = [0f32; 32];
                q(xb).dequantize(&mut w);
                e += xb
                    .iter()
                    .zip(&w)
                    .map(|(a, b)| ((a - b) as f64).powi(2))
                    .sum::<f64>();
            }
            e / x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>()
        };
        let (search, reference) = (err(BlockIQ4_NL::quantize), err(BlockIQ4_NL::quantize_ref));
        assert!(search < reference, "{search} vs {reference}");
        assert!((reference / 6.18e-3 - 1.0).abs() < 0.15, "{reference}");
    }
}
