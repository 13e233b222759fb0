//! wgquant 1-bit weights (binary-weight networks, XNOR-Net style): each weight is `+s` or
//! `-s`, one sign bit each, with one f16 scale `s` per group of 32, 64 or 128 weights.
//! GGUF has no type for it: the io layer stores the canonical blocks as an I8
//! `<name>.blocks` tensor.
//!
//! # Block layout
//! Blocks are back to back with no padding; all multi-byte values are little-endian.
//! In the style of ggml-common.h:
//!
//! ```text
//! // b1_g{group}: 2 + group / 8 bytes
//! typedef struct {
//!     ggml_half s;               // scale, >= 0
//!     uint8_t   qs[group / 8];   // sign bits, least significant bit first
//! } block_b1;
//! ```
//!
//! | format | block bytes | bits per weight |
//! |---|---|---|
//! | b1_g32 | 6 | 1.5 |
//! | b1_g64 | 10 | 1.25 |
//! | b1_g128 | 18 | 1.125 |
//!
//! Weight `i` of the group is bit `i % 8` of `qs[i / 8]`: bit 1 means `+s`, bit 0 `-s`.
//! Read little-endian as `u32` words, `qs` is therefore exactly the GPU code plane (bit `j`
//! of word `w` is weight `32 w + j`).
//!
//! # Reference quantizer
//! - `s = f16(sum |x| / group)`: the sum runs in f64 in weight order, the division is exact
//!   (a power of two), and the f64 mean is rounded once to f16 (nearest even), saturating
//!   at 65504. This is the L2-optimal scale for fixed signs (`mean |x|`).
//! - bit `i` is 1 when `x_i >= 0` (so +0 and -0 both map to `+s`), 0 otherwise.
//! - if `s` is 0 (an all-zero group, or one too small for f16) every bit is 1, so all
//!   weights dequantize to +0 and the block is canonical.
//!
//! # GPU layout
//! Codes: the sign bits as above (32 per word, so a chunk is 128 weights: 1 to 4 groups).
//! Params: one half per group, the f16 bits of `s`. The shader loads the scale of each of
//! the chunk's 4 words (a word never straddles a group).

use super::Codec;
use half::f16;
use std::fmt;

/// Sign bits with one f16 scale (mean |w|) per `group` weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BinaryFormat {
    pub group: usize,
}

impl BinaryFormat {
    pub const fn new(group: usize) -> Self {
        BinaryFormat { group }
    }

    /// The scale `s` of a canonical block.
    fn scale(block: &[u8]) -> f16 {
        f16::from_le_bytes([block[0], block[1]])
    }

    /// Whether weight `i` of a canonical block is `+s`.
    fn positive(block: &[u8], i: usize) -> bool {
        block[2 + i / 8] >> (i % 8) & 1 == 1
    }
}

/// A non-negative f64 rounded once to the nearest f16 (ties to even): rounding to f32 with
/// round-to-odd first keeps enough bits (24 > 11 + 1) for the f16 rounding to be exact.
/// (`half`'s `f16::from_f64` rounds twice: through f32 with ties to even.)
fn f64_to_f16(v: f64) -> f16 {
    let t = v as f32;
    let mut bits = t.to_bits();
    if t as f64 != v {
        if t as f64 > v {
            bits -= 1;
        }
        bits |= 1;
    }
    f16::from_f32(f32::from_bits(bits))
}

impl fmt::Display for BinaryFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b1_g{}", self.group)
    }
}

impl Codec for BinaryFormat {
    fn name(&self) -> String {
        self.to_string()
    }
    fn block_values(&self) -> usize {
        self.group
    }
    fn block_bytes(&self) -> usize {
        2 + self.group / 8
    }
    fn quantize_block(&self, x: &[f32], out: &mut [u8]) {
        let x = &x[..self.group];
        let mean = x.iter().map(|v| v.abs() as f64).sum::<f64>() / self.group as f64;
        let mut s = f64_to_f16(mean);
        if s.is_infinite() {
            s = f16::MAX;
        }
        out[..2].copy_from_slice(&s.to_le_bytes());
        let qs = &mut out[2..self.block_bytes()];
        if s.to_f32() == 0.0 {
            qs.fill(0xff);
            return;
        }
        qs.fill(0);
        for (i, &v) in x.iter().enumerate() {
            qs[i / 8] |= ((v >= 0.0) as u8) << (i % 8);
        }
    }
    fn dequantize_block(&self, block: &[u8], out: &mut [f32]) {
        let s = Self::scale(block).to_f32();
        for (i, o) in out[..self.group].iter_mut().enumerate() {
            *o = if Self::positive(block, i) { s } else { -s };
        }
    }
    fn word_values(&self) -> usize {
        32
    }
    fn param_halves(&self) -> usize {
        1
    }
    fn gpu_block(&self, block: &[u8], codes: &mut [u32], params: &mut [u16]) {
        for (w, b) in codes
            .iter_mut()
            .zip(block[2..self.block_bytes()].chunks_exact(4))
        {
            *w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        params[0] = Self::scale(block).to_bits();
    }
    fn wgsl(&self) -> &'static str {
        include_str!("../../shaders/formats/binary.wgsl")
    }
}
