//! Group-wise int8 / int4 of wgquant's own layout (GGUF has no type for it).
//!
//! # Block layout
//! A row of `k` weights is `k / group` blocks, one per group, back to back with no padding
//! (so blocks are generally not 4-byte aligned). All multi-byte values are little-endian.
//! In the style of ggml-common.h:
//!
//! ```text
//! // int{bits}_g{group} (symmetric): 2 + group * bits / 8 bytes
//! typedef struct {
//!     ggml_half s;                     // scale
//!     uint8_t   qs[group * bits / 8];  // unsigned codes
//! } block_int_sym;
//!
//! // int{bits}_g{group}_asym: 3 + group * bits / 8 bytes
//! typedef struct {
//!     ggml_half s;                     // scale
//!     uint8_t   z;                     // zero point, 0 ..= 2^bits - 1
//!     uint8_t   qs[group * bits / 8];  // unsigned codes
//! } block_int_asym;
//! ```
//!
//! | format | g32 | g64 | g128 |
//! |---|---|---|---|
//! | int8 sym / asym | 34 / 35 | 66 / 67 | 130 / 131 |
//! | int4 sym / asym | 18 / 19 | 34 / 35 | 66 / 67 |
//!
//! Codes `q` are unsigned and in natural order:
//! - int8: byte `i` of `qs` is the code of weight `i`.
//! - int4: byte `i` of `qs` holds weight `2i` in its low nibble and weight `2i + 1` in its
//!   high nibble. (Unlike Q4_0/Q4_1, whose byte `j` pairs weights `j` and `j + 16`.)
//!
//! Read little-endian as `u32` words, `qs` is therefore exactly the GPU code plane: nibble
//! (int4) or byte (int8) `j` of word `w` is weight `w * word_values() + j`.
//!
//! A weight is `w = s * (q - z)` with `z = 2^(bits-1)` (8 or 128) for symmetric formats,
//! computed in f32 as `s * (q as f32 - z as f32)`. This is exact (`s` has 11 significant
//! bits and `|q - z| < 256`), so the shader's `s * q - s * z` gives the same bits.
//!
//! # Reference quantizer (round to nearest, per group)
//! `round` is round half away from zero (C's `roundf`); divisions are f32; `f16(v)` rounds
//! to nearest even and saturates to the largest finite f16 (65504) instead of infinity.
//! - symmetric: `qmax = 2^(bits-1) - 1`; `s = f16(max |x| / qmax)`, and with that f16 `s`,
//!   `q = clamp(round(x / s), -qmax, qmax) + 2^(bits-1)`. Codes lie in `1 ..= 2^bits - 1`
//!   (code 0 reads fine but is never written). If `s` is 0 (an all-zero group, or one too
//!   small for f16) every code is `2^(bits-1)`.
//! - asymmetric: `qmax = 2^bits - 1`; `lo = min(0, min x)`, `hi = max(0, max x)` (zero is
//!   always in range, so it stays exact and a constant group keeps its value to f16
//!   precision); `s = f16((hi - lo) / qmax)`, `z = clamp(round(-lo / s), 0, qmax)`,
//!   `q = clamp(round(x / s) + z, 0, qmax)`. If `s` is 0, `z` and every code are 0.
//!
//! # GPU params
//! Two halves per group for both symmetries: the f16 bits of `s`, then `z` as an integer.

use super::{pack_bytes, round_away, Codec, Format, QuantizedTensor};
use crate::error::{Error, Result};
use half::f16;
use std::fmt;

/// Group-wise integer weights: `bits` 4 or 8, `group` 32, 64 or 128 weights per f16 scale,
/// symmetric or asymmetric (integer zero point). See the module docs for the block layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IntFormat {
    pub bits: u32,
    pub group: usize,
    pub asym: bool,
}

impl IntFormat {
    pub const fn new(bits: u32, group: usize, asym: bool) -> Self {
        IntFormat { bits, group, asym }
    }

    /// Bytes before the codes in a block: the scale, and the zero point if asymmetric.
    fn header_bytes(&self) -> usize {
        2 + self.asym as usize
    }

    /// Bytes of codes of `n` weights.
    fn code_bytes(&self, n: usize) -> usize {
        n * self.bits as usize / 8
    }

    /// The largest unsigned code, `2^bits - 1`.
    fn max_code(&self) -> u32 {
        (1 << self.bits) - 1
    }

    /// The implied zero point of symmetric formats, `2^(bits-1)`.
    fn sym_zero(&self) -> u32 {
        1 << (self.bits - 1)
    }

    /// The code of weight `i` in the code bytes `qs` of a block.
    fn code(&self, qs: &[u8], i: usize) -> u32 {
        if self.bits == 4 {
            (qs[i / 2] >> (4 * (i & 1)) & 15) as u32
        } else {
            qs[i] as u32
        }
    }

    /// (scale, zero point) of a canonical block.
    fn params(&self, block: &[u8]) -> (f16, u32) {
        let s = f16::from_le_bytes([block[0], block[1]]);
        let z = if self.asym {
            block[2] as u32
        } else {
            self.sym_zero()
        };
        (s, z)
    }

    /// Split a tensor of this format into the planes GGUF stores it as.
    ///
    /// # Panics
    /// If `t` is not of this format.
    pub fn to_planes(&self, t: &QuantizedTensor) -> IntPlanes {
        assert_eq!(
            t.format(),
            Format::Int(*self),
            "to_planes: tensor format does not match"
        );
        let blocks = t.rows() * (t.k() / self.group);
        let hb = self.header_bytes();
        let mut codes = Vec::with_capacity(t.rows() * self.code_bytes(t.k()));
        let mut scales = Vec::with_capacity(blocks);
        let mut zeros = Vec::with_capacity(if self.asym { blocks } else { 0 });
        for block in t.bytes().chunks_exact(self.block_bytes()) {
            scales.push(u16::from_le_bytes([block[0], block[1]]));
            if self.asym {
                zeros.push(block[2]);
            }
            codes.extend_from_slice(&block[hb..]);
        }
        IntPlanes {
            codes,
            scales,
            zeros: self.asym.then_some(zeros),
        }
    }

    /// Rebuild a `rows` x `k` tensor of this format from its planes, checking every size
    /// (and that zero points fit the code range).
    pub fn from_planes(
        &self,
        rows: usize,
        k: usize,
        planes: &IntPlanes,
    ) -> Result<QuantizedTensor> {
        let format = Format::Int(*self);
        if !matches!(self.bits, 4 | 8) || !matches!(self.group, 32 | 64 | 128) {
            return Err(Error::UnsupportedFormat(format!(
                "{format}: int formats have 4 or 8 bits and groups of 32, 64 or 128"
            )));
        }
        format.check_k(k)?;
        let overflow = || Error::Shape(format!("{format} planes of {rows} x {k} overflow"));
        let groups = rows.checked_mul(k / self.group).ok_or_else(overflow)?;
        let code_len = rows.checked_mul(self.code_bytes(k)).ok_or_else(overflow)?;
        let check = |what: &str, len: usize, want: usize| {
            if len == want {
                Ok(())
            } else {
                Err(Error::Shape(format!(
                    "{format} {what} plane of {rows} x {k} needs {want} values, got {len}"
                )))
            }
        };
        check("codes", planes.codes.len(), code_len)?;
        check("scales", planes.scales.len(), groups)?;
        match (&planes.zeros, self.asym) {
            (Some(z), true) => {
                check("zeros", z.len(), groups)?;
                if let Some(bad) = z.iter().find(|&&v| v as u32 > self.max_code()) {
                    return Err(Error::InvalidArgument(format!(
                        "{format} zero point {bad} is out of range 0..={}",
                        self.max_code()
                    )));
                }
            }
            (None, false) => {}
            (Some(_), false) => {
                return Err(Error::Shape(format!(
                    "{format} is symmetric but zero points were given"
                )))
            }
            (None, true) => {
                return Err(Error::Shape(format!(
                    "{format} is asymmetric but no zero points were given"
                )))
            }
        }
        let gb = self.code_bytes(self.group);
        let mut data = Vec::with_capacity(groups * self.block_bytes());
        for (g, (qs, s)) in planes
            .codes
            .chunks_exact(gb)
            .zip(&planes.scales)
            .enumerate()
        {
            data.extend_from_slice(&s.to_le_bytes());
            if let Some(z) = &planes.zeros {
                data.push(z[g]);
            }
            data.extend_from_slice(qs);
        }
        QuantizedTensor::from_bytes(format, rows, k, data)
    }
}

/// `f16(v)` for a non-negative scale, saturating to the largest finite f16.
fn scale_f16(v: f32) -> f16 {
    let s = f16::from_f32(v);
    if s.is_infinite() {
        f16::MAX
    } else {
        s
    }
}

impl fmt::Display for IntFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "int{}_g{}", self.bits, self.group)?;
        if self.asym {
            f.write_str("_asym")?;
        }
        Ok(())
    }
}

impl Codec for IntFormat {
    fn name(&self) -> String {
        self.to_string()
    }
    fn block_values(&self) -> usize {
        self.group
    }
    fn block_bytes(&self) -> usize {
        self.header_bytes() + self.code_bytes(self.group)
    }
    fn quantize_block(&self, x: &[f32], out: &mut [u8]) {
        let x = &x[..self.group];
        // (scale, zero point, code range before adding z for sym / after for asym)
        let (s, z, qlo, qhi) = if self.asym {
            let qmax = self.max_code() as f32;
            let (lo, hi) = x
                .iter()
                .fold((0.0f32, 0.0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            let s = scale_f16((hi - lo) / qmax);
            let sf = s.to_f32();
            let z = if sf == 0.0 {
                0.0
            } else {
                round_away(-lo / sf).clamp(0.0, qmax)
            };
            (s, z, 0.0, qmax)
        } else {
            let qmax = (self.sym_zero() - 1) as f32;
            let amax = x.iter().fold(0.0f32, |a, &v| a.max(v.abs()));
            (scale_f16(amax / qmax), self.sym_zero() as f32, -qmax, qmax)
        };
        let sf = s.to_f32();
        let code = |v: f32| -> u8 {
            if sf == 0.0 {
                z as u8
            } else if self.asym {
                (round_away(v / sf) + z).clamp(qlo, qhi) as u8
            } else {
                (round_away(v / sf).clamp(qlo, qhi) + z) as u8
            }
        };
        out[..2].copy_from_slice(&s.to_le_bytes());
        if self.asym {
            out[2] = z as u8;
        }
        let qs = &mut out[self.header_bytes()..self.block_bytes()];
        if self.bits == 4 {
            for (b, pair) in qs.iter_mut().zip(x.chunks_exact(2)) {
                *b = code(pair[0]) | (code(pair[1]) << 4);
            }
        } else {
            for (b, &v) in qs.iter_mut().zip(x) {
                *b = code(v);
            }
        }
    }
    fn dequantize_block(&self, block: &[u8], out: &mut [f32]) {
        let (s, z) = self.params(block);
        let (s, z) = (s.to_f32(), z as f32);
        let qs = &block[self.header_bytes()..self.block_bytes()];
        for (i, o) in out[..self.group].iter_mut().enumerate() {
            *o = s * (self.code(qs, i) as f32 - z);
        }
    }
    fn word_values(&self) -> usize {
        32 / self.bits as usize
    }
    fn param_halves(&self) -> usize {
        2
    }
    fn gpu_block(&self, block: &[u8], codes: &mut [u32], params: &mut [u16]) {
        // The canonical code bytes, read as little-endian words, are the GPU code words.
        let qs = &block[self.header_bytes()..self.block_bytes()];
        for (w, chunk) in codes.iter_mut().zip(qs.chunks_exact(4)) {
            *w = pack_bytes(chunk);
        }
        let (s, z) = self.params(block);
        params[0] = s.to_bits();
        params[1] = z as u16;
    }
    fn wgsl(&self) -> &'static str {
        include_str!("../../shaders/formats/int.wgsl")
    }
    fn wgsl_constants(&self) -> Vec<(&'static str, f64)> {
        vec![("BITS", self.bits as f64)]
    }
}

/// The planes an int tensor is stored as in GGUF (which has no type for it):
/// codes `rows x (k * bits / 8)` bytes, in the block layout's packing (int4: low nibble =
/// even weight); scales `rows x groups` f16 bits; and for asymmetric formats zero points
/// `rows x groups` bytes (`None` for symmetric ones). All row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct IntPlanes {
    pub codes: Vec<u8>,
    pub scales: Vec<u16>,
    pub zeros: Option<Vec<u8>>,
}
