//! 2:4 semi-structured sparse int4 / int8 of wgquant's own layout: of every four consecutive
//! weights of a row two are kept, each as a symmetric integer code, with its position in the
//! group of four. GGUF has no type for it: it is stored as the canonical blocks (a
//! `<name>.blocks` tensor) with the `wgquant.format.<name>` key, as the other own formats.
//!
//! # Block layout
//! A row of `k` weights is `k / group` blocks back to back, little-endian, no padding. In the
//! style of ggml-common.h:
//!
//! ```text
//! // int{bits}_g{group}_2of4: 2 + group * bits / 16 + group / 8 bytes
//! typedef struct {
//!     ggml_half s;                          // scale
//!     uint8_t   qs[group / 2 * bits / 8];   // codes of the kept weights, 2 per group of 4
//!     uint8_t   pos[group / 8];             // positions, 4 bits per group of 4
//! } block_int_2of4;
//! ```
//!
//! | format | bytes per block | bits per weight |
//! |---|---|---|
//! | int4_g64_2of4 | 26 | 3.25 |
//! | int4_g128_2of4 | 50 | 3.125 |
//! | int8_g128_2of4 | 82 | 5.125 |
//!
//! Group `i` of a block covers its weights `4i .. 4i + 3`. Its two kept weights sit at
//! positions `p0 < p1` (0..=3 within the group): nibble `i` of `pos` (low nibble of byte
//! `i / 2` for even `i`) holds `p0` in bits 0-1 and `p1` in bits 2-3. Its codes: int4, byte
//! `i` of `qs`, low nibble the weight at `p0`, high nibble the one at `p1`; int8, bytes `2i`
//! (at `p0`) and `2i + 1` (at `p1`). The other two weights are zero.
//!
//! A kept weight is `w = s * (q - z)` with `z = 2^(bits-1)` (8 or 128), exact in f32 as for
//! the int formats. Dequantization adds each kept code's `q - z` at its position and scales
//! the group once (so a malformed block naming one position twice reads as their sum on the
//! CPU and the GPU alike).
//!
//! # Reference quantizer
//! Per group of four, the two weights of largest magnitude are kept (ties: the lower
//! position; NaN counts as largest); then, as the symmetric int formats,
//! `s = f16(max |x| / qmax)` over the block (`qmax = 2^(bits-1) - 1`, saturating to the
//! largest finite f16) and `q = clamp(round(x / s), -qmax, qmax) + z` (round half away from
//! zero), every code `z` where `s` is 0. Weights pruned beforehand (exact zeros, two per
//! group) are therefore kept as they are: the quantizer keeps a group's nonzeros.
//!
//! # GPU layout
//! Codes: the `qs` bytes as little-endian words (int4: 16 dense weights per word, int8: 8).
//! Params per block: the f16 bits of `s`, a zero half, then the `pos` bytes as halves
//! (`2 + group / 16` halves), so each chunk's position words are whole words.

use super::{round_away, ChunkParamTexel, Codec, Format, IntFormat};
use half::f16;
use std::fmt;

/// 2:4 sparse symmetric integer weights: `bits` 4 or 8, `group` weights (dense count) per
/// f16 scale. See the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SparseFormat {
    pub bits: u32,
    pub group: usize,
}

impl SparseFormat {
    pub const fn new(bits: u32, group: usize) -> Self {
        SparseFormat { bits, group }
    }

    fn zero(&self) -> i32 {
        1 << (self.bits - 1)
    }

    fn qmax(&self) -> i32 {
        self.zero() - 1
    }

    /// Bytes of codes per block.
    fn code_bytes(&self) -> usize {
        self.group / 2 * self.bits as usize / 8
    }

    /// The two codes of group `i` (at `p0`, at `p1`).
    fn codes(&self, qs: &[u8], i: usize) -> (i32, i32) {
        if self.bits == 4 {
            let b = qs[i];
            ((b & 15) as i32, (b >> 4) as i32)
        } else {
            (qs[2 * i] as i32, qs[2 * i + 1] as i32)
        }
    }

    /// The positions (p0, p1) of group `i`.
    fn positions(pos: &[u8], i: usize) -> (usize, usize) {
        let n = (pos[i / 2] >> (4 * (i & 1))) & 15;
        ((n & 3) as usize, (n >> 2) as usize)
    }

    /// `w` (whole groups of four) pruned as the reference quantizer prunes: each group's
    /// two weights other than [`Self::kept`] set to zero.
    pub fn prune(w: &mut [f32]) {
        for g in w.chunks_exact_mut(4) {
            let (p0, p1) = Self::kept(g);
            for (i, v) in g.iter_mut().enumerate() {
                if i != p0 && i != p1 {
                    *v = 0.0;
                }
            }
        }
    }

    /// The dense int format of the same bits and group (what stays dense beside this one).
    pub fn dense(&self) -> IntFormat {
        IntFormat::new(self.bits, self.group, false)
    }

    /// Which two of the group's four weights the reference quantizer keeps (ascending).
    pub fn kept(x: &[f32]) -> (usize, usize) {
        let mag = |i: usize| {
            if x[i].is_nan() {
                f32::INFINITY
            } else {
                x[i].abs()
            }
        };
        let mut idx = [0usize, 1, 2, 3];
        // Largest magnitude first; equal magnitudes keep the lower position first.
        idx.sort_by(|&a, &b| mag(b).total_cmp(&mag(a)).then(a.cmp(&b)));
        let (a, b) = (idx[0], idx[1]);
        (a.min(b), a.max(b))
    }
}

impl fmt::Display for SparseFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "int{}_g{}_2of4", self.bits, self.group)
    }
}

impl Codec for SparseFormat {
    fn name(&self) -> String {
        self.to_string()
    }
    fn block_values(&self) -> usize {
        self.group
    }
    fn block_bytes(&self) -> usize {
        2 + self.code_bytes() + self.group / 8
    }
    fn quantize_block(&self, x: &[f32], out: &mut [u8]) {
        let x = &x[..self.group];
        let qmax = self.qmax() as f32;
        let amax = x.iter().fold(0.0f32, |a, &v| a.max(v.abs()));
        let s = f16::from_f32(amax / qmax);
        let s = if s.is_infinite() { f16::MAX } else { s };
        let sf = s.to_f32();
        let code = |v: f32| -> i32 {
            if sf == 0.0 {
                self.zero()
            } else {
                round_away(v / sf).clamp(-qmax, qmax) as i32 + self.zero()
            }
        };
        out[..self.block_bytes()].fill(0);
        out[..2].copy_from_slice(&s.to_le_bytes());
        let cb = self.code_bytes();
        let (qs, pos) = out[2..self.block_bytes()].split_at_mut(cb);
        for (i, g) in x.chunks_exact(4).enumerate() {
            let (p0, p1) = Self::kept(g);
            let (q0, q1) = (code(g[p0]), code(g[p1]));
            if self.bits == 4 {
                qs[i] = (q0 | q1 << 4) as u8;
            } else {
                qs[2 * i] = q0 as u8;
                qs[2 * i + 1] = q1 as u8;
            }
            pos[i / 2] |= ((p0 | p1 << 2) as u8) << (4 * (i & 1));
        }
    }
    fn dequantize_block(&self, block: &[u8], out: &mut [f32]) {
        let s = f16::from_le_bytes([block[0], block[1]]).to_f32();
        let cb = self.code_bytes();
        let (qs, pos) = block[2..self.block_bytes()].split_at(cb);
        for (i, o) in out[..self.group].chunks_exact_mut(4).enumerate() {
            let (p0, p1) = Self::positions(pos, i);
            let (q0, q1) = self.codes(qs, i);
            let mut v = [0f32; 4];
            v[p0] += (q0 - self.zero()) as f32;
            v[p1] += (q1 - self.zero()) as f32;
            for (o, v) in o.iter_mut().zip(v) {
                *o = s * v;
            }
        }
    }
    fn word_values(&self) -> usize {
        // Dense weights per code word: two of every four are stored.
        2 * 32 / self.bits as usize
    }
    fn param_halves(&self) -> usize {
        2 + self.group / 16
    }
    fn gpu_block(&self, block: &[u8], codes: &mut [u32], params: &mut [u16]) {
        let cb = self.code_bytes();
        let (qs, pos) = block[2..self.block_bytes()].split_at(cb);
        for (w, c) in codes.iter_mut().zip(qs.chunks_exact(4)) {
            *w = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        params[0] = u16::from_le_bytes([block[0], block[1]]);
        params[1] = 0;
        for (p, b) in params[2..].iter_mut().zip(pos.chunks_exact(2)) {
            *p = u16::from_le_bytes([b[0], b[1]]);
        }
    }
    fn wgsl(&self) -> &'static str {
        include_str!("../../shaders/formats/sparse_2of4.wgsl")
    }
    fn wgsl_constants(&self) -> Vec<(&'static str, f64)> {
        vec![("BITS", self.bits as f64)]
    }
    fn chunk_param_texel(&self) -> Option<ChunkParamTexel> {
        Some(if self.bits == 4 {
            chunk_texel::<2>
        } else {
            chunk_texel::<1>
        })
    }
}

/// A chunk's params in one texel (the texture GEMV): the f16 bits of `s`, then the chunk's
/// `WORDS` position words (2 for int4's 64-weight chunks, 1 for int8's 32).
fn chunk_texel<const WORDS: usize>(p: &[u16], chunk: usize) -> [u32; 4] {
    let mut t = [p[0] as u32, 0, 0, 0];
    for (w, slot) in t[1..=WORDS].iter_mut().enumerate() {
        let h = 2 + 2 * (chunk * WORDS + w);
        *slot = p[h] as u32 | (p[h + 1] as u32) << 16;
    }
    t
}

impl From<SparseFormat> for Format {
    fn from(f: SparseFormat) -> Format {
        Format::Sparse24(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::QuantizedTensor;
    use crate::rng::Rng;

    fn formats() -> [SparseFormat; 3] {
        [
            SparseFormat::new(4, 64),
            SparseFormat::new(4, 128),
            SparseFormat::new(8, 128),
        ]
    }

    /// Every group of four dequantizes to its two largest weights, each rounded exactly as
    /// the symmetric int format of the same bits and group rounds it (the same scale: the
    /// block's largest magnitude is always kept), and two zeros.
    #[test]
    fn keeps_the_two_largest_of_four_rounded_as_the_int_format() {
        let mut rng = Rng::new(9);
        for f in formats() {
            let (rows, k) = (5, 512);
            let w = rng.normal_vec(rows * k);
            let sparse = QuantizedTensor::quantize(Format::Sparse24(f), &w, rows, k)
                .unwrap()
                .dequantize();
            let int = Format::Int(f.dense());
            let dense = QuantizedTensor::quantize(int, &w, rows, k)
                .unwrap()
                .dequantize();
            for (g, ((x, s), d)) in w
                .chunks_exact(4)
                .zip(sparse.chunks_exact(4))
                .zip(dense.chunks_exact(4))
                .enumerate()
            {
                let (p0, p1) = SparseFormat::kept(x);
                for i in 0..4 {
                    let want = if i == p0 || i == p1 { d[i] } else { 0.0 };
                    assert_eq!(s[i].to_bits(), want.to_bits(), "{f} group {g} weight {i}");
                }
                let mut m: Vec<f32> = x.iter().map(|v| v.abs()).collect();
                m.sort_by(f32::total_cmp);
                assert!(x[p0].abs() >= m[2] && x[p1].abs() >= m[2], "{f} group {g}");
            }
        }
    }

    /// Weights pruned to 2 of 4 beforehand keep their pattern: they dequantize exactly as
    /// the dense int format of the same bits and group rounds them (zeros stay zero).
    #[test]
    fn pre_pruned_weights_keep_their_pattern() {
        let mut rng = Rng::new(3);
        let f = SparseFormat::new(4, 128);
        let mut w = rng.normal_vec(4 * 256);
        for (g, x) in w.chunks_exact_mut(4).enumerate() {
            let keep = [(0, 1), (0, 3), (1, 2), (2, 3), (1, 3), (0, 2)][g % 6];
            for (i, v) in x.iter_mut().enumerate() {
                if i != keep.0 && i != keep.1 {
                    *v = 0.0;
                }
            }
        }
        let q = QuantizedTensor::quantize(Format::Sparse24(f), &w, 4, 256).unwrap();
        let int = Format::Int(IntFormat::new(4, 128, false));
        let dense = QuantizedTensor::quantize(int, &w, 4, 256)
            .unwrap()
            .dequantize();
        for (i, (y, d)) in q.dequantize().iter().zip(&dense).enumerate() {
            assert_eq!(y.to_bits(), d.to_bits(), "weight {i}");
        }
    }

    #[test]
    fn kept_breaks_ties_by_position_and_treats_nan_as_largest() {
        assert_eq!(SparseFormat::kept(&[1.0, 1.0, 1.0, 1.0]), (0, 1));
        assert_eq!(SparseFormat::kept(&[0.0, -3.0, 2.0, 3.0]), (1, 3));
        assert_eq!(SparseFormat::kept(&[0.0, f32::NAN, 2.0, 1.0]), (1, 2));
        assert_eq!(SparseFormat::kept(&[0.0; 4]), (0, 1));
    }

    #[test]
    fn sizes_and_bits_per_weight() {
        let bpw: Vec<f64> = formats()
            .iter()
            .map(|&f| Format::Sparse24(f).bits_per_weight())
            .collect();
        assert_eq!(bpw, [3.25, 3.125, 5.125]);
        for f in formats() {
            assert_eq!(
                f.to_string().parse::<Format>().unwrap(),
                Format::Sparse24(f)
            );
            // Whole words of codes and params per block.
            assert_eq!(f.code_bytes() % 4, 0);
            assert_eq!(f.param_halves() % 2, 0);
        }
    }
}
