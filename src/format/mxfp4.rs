//! OCP MXFP4 as GGUF stores it: blocks of 32 E2M1 (4-bit float) values sharing one E8M0
//! (power of two) scale.
//!
//! # Block layout
//! In the style of ggml-common.h (no padding):
//!
//! ```text
//! // MXFP4: 17 bytes, 4.25 bits per weight
//! typedef struct {
//!     uint8_t e;             // E8M0 exponent: the block scale is 2^(e - 127)
//!     uint8_t qs[16];        // byte j: low nibble = weight j, high nibble = weight j + 16
//! } block_mxfp4;
//!
//! // E2M1 values doubled, by code (bit 3 is the sign):
//! static const int8_t kvalues_mxfp4[16] =
//!     {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};
//! ```
//!
//! # Dequantization (ggml's `dequantize_row_mxfp4`)
//! `w = kvalues_mxfp4[q] * h(e)` in f32, where `h(e) = 2^(e - 128)` is half the E8M0 scale
//! (the table is doubled), built from bits as ggml's `ggml_e8m0_to_fp32_half`: for `e >= 2`
//! the f32 with exponent field `e - 1`; for `e = 0, 1` the f32 subnormals `2^-128`,
//! `2^-127` (bits `0x00200000 << e`). So `e = 0xFF` is `2^127`, not the OCP NaN, and every
//! product is exact (a power of two times an integer up to 12) unless it overflows to
//! infinity. The shader computes `h(e)` from the same bits; a GPU that flushes f32
//! subnormals reads blocks with `e < 24` (|w| < 2^-101) as zero.
//!
//! # Reference quantizer (ggml's `quantize_row_mxfp4_ref`, = `gguf.quants.quantize`)
//! `amax = max |x|`; `e = floor(log2(amax)) - 2 + 127` if `amax > 0`, else 0, cast to
//! `u8` modulo 256 as C's and numpy's conversions do on x86 (so `amax < 2^-125` wraps to
//! an exponent near 255 and the block reads as zeros). `log2` is rounded to f32 first, as
//! `log2f`: the f32 just below `2^k` gives `k` once `|k| >= 4`. Each weight takes the code
//! with the smallest `|kvalues_mxfp4[i] * h(e) - x|` (the first such code, so zero is
//! code 0, never 8).
//!
//! # GPU layout
//! Codes are the 4-bit codes in natural order; one param half per block holding `e`. The
//! table is a WGSL `const` of 16 int8 packed in a `vec4<u32>` (see the shader for why).

use super::{pack_nibbles, Codec, GgmlType};

/// Weights per MXFP4 block.
pub const QK_MXFP4: usize = 32;

/// ggml's `kvalues_mxfp4`: E2M1 values times 2, by code.
pub const KVALUES_MXFP4: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// Half the E8M0 scale, `2^(e - 128)`, from bits as ggml's `ggml_e8m0_to_fp32_half`.
pub fn e8m0_to_f32_half(e: u8) -> f32 {
    let bits = if e < 2 {
        0x0020_0000u32 << e
    } else {
        (e as u32 - 1) << 23
    };
    f32::from_bits(bits)
}

/// The shared exponent ggml picks for a block whose largest magnitude is `amax`.
fn block_exponent(amax: f32) -> u8 {
    if amax > 0.0 {
        // log2f: rounded to f32 before the floor.
        let l = ((amax as f64).log2() as f32).floor();
        (l as i64).wrapping_add(125) as u8
    } else {
        0
    }
}

/// One MXFP4 block, exactly as ggml lays it out (17 bytes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockMXFP4 {
    pub e: u8,
    pub qs: [u8; QK_MXFP4 / 2],
}

impl BlockMXFP4 {
    pub const BYTES: usize = 1 + QK_MXFP4 / 2;

    /// Serialize to ggml's byte layout.
    pub fn pack(&self, out: &mut [u8]) {
        out[0] = self.e;
        out[1..Self::BYTES].copy_from_slice(&self.qs);
    }

    /// Parse ggml's byte layout.
    pub fn unpack(b: &[u8]) -> Self {
        BlockMXFP4 {
            e: b[0],
            qs: b[1..Self::BYTES].try_into().unwrap(),
        }
    }

    /// The 4-bit E2M1 code of weight `j`.
    pub fn code(&self, j: usize) -> u8 {
        let byte = self.qs[j % 16];
        if j < 16 {
            byte & 15
        } else {
            byte >> 4
        }
    }

    /// ggml's `quantize_row_mxfp4_ref` for one block.
    pub fn quantize(x: &[f32]) -> Self {
        let x = &x[..QK_MXFP4];
        let mut amax = 0.0f32;
        for &v in x {
            if amax < v.abs() {
                amax = v.abs();
            }
        }
        let e = block_exponent(amax);
        let d = e8m0_to_f32_half(e);
        let best = |v: f32| -> u8 {
            let err = |i: usize| (KVALUES_MXFP4[i] as f32 * d - v).abs();
            let mut bi = 0;
            let mut be = err(0);
            for i in 1..16 {
                let ei = err(i);
                if ei < be {
                    bi = i;
                    be = ei;
                }
            }
            bi as u8
        };
        BlockMXFP4 {
            e,
            qs: std::array::from_fn(|j| best(x[j]) | (best(x[j + 16]) << 4)),
        }
    }

    /// ggml's `dequantize_row_mxfp4` for one block.
    pub fn dequantize(&self, out: &mut [f32]) {
        let d = e8m0_to_f32_half(self.e);
        for (j, o) in out.iter_mut().enumerate().take(QK_MXFP4) {
            *o = KVALUES_MXFP4[self.code(j) as usize] as f32 * d;
        }
    }
}

/// The MXFP4 format.
pub struct MXFP4;

impl Codec for MXFP4 {
    fn name(&self) -> String {
        "mxfp4".into()
    }
    fn block_values(&self) -> usize {
        QK_MXFP4
    }
    fn block_bytes(&self) -> usize {
        BlockMXFP4::BYTES
    }
    fn quantize_block(&self, x: &[f32], out: &mut [u8]) {
        BlockMXFP4::quantize(x).pack(out);
    }
    fn dequantize_block(&self, block: &[u8], out: &mut [f32]) {
        BlockMXFP4::unpack(block).dequantize(out);
    }
    fn word_values(&self) -> usize {
        8
    }
    fn param_halves(&self) -> usize {
        1
    }
    fn gpu_block(&self, block: &[u8], codes: &mut [u32], params: &mut [u16]) {
        let b = BlockMXFP4::unpack(block);
        let q: [u8; QK_MXFP4] = std::array::from_fn(|j| b.code(j));
        for (w, chunk) in codes.iter_mut().zip(q.chunks_exact(8)) {
            *w = pack_nibbles(chunk);
        }
        params[0] = b.e as u16;
    }
    fn wgsl(&self) -> &'static str {
        concat!(
            include_str!("../../shaders/formats/int8_table.wgsl"),
            include_str!("../../shaders/formats/mxfp4.wgsl")
        )
    }
    fn ggml_type(&self) -> Option<GgmlType> {
        Some(GgmlType::MXFP4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e8m0_half_is_two_to_the_e_minus_128() {
        for e in 0..=255u8 {
            assert_eq!(
                e8m0_to_f32_half(e) as f64,
                2f64.powi(e as i32 - 128),
                "e = {e}"
            );
        }
    }

    #[test]
    fn exponent_follows_log2f_rounding() {
        assert_eq!(block_exponent(1.0), 125);
        assert_eq!(block_exponent(6.0), 127);
        assert_eq!(block_exponent(0.0), 0);
        // The f32 below 2: log2 rounds to 1 - 2^-24, floor 0. Below 16: rounds up to 4.
        assert_eq!(block_exponent(f32::from_bits(2f32.to_bits() - 1)), 125);
        assert_eq!(block_exponent(f32::from_bits(16f32.to_bits() - 1)), 129);
        // Below 2^-125 the exponent wraps.
        assert_eq!(block_exponent(2f32.powi(-126)), 255);
    }

    #[test]
    fn pack_unpack_and_values() {
        let b = BlockMXFP4 {
            e: 127,
            qs: std::array::from_fn(|j| j as u8 | (15 - j as u8) << 4),
        };
        let mut buf = [0u8; 17];
        b.pack(&mut buf);
        assert_eq!(BlockMXFP4::unpack(&buf), b);
        let mut w = [0f32; 32];
        b.dequantize(&mut w);
        // 2^0 scale: E2M1 values 0, 0.5, 1, 1.5, 2, 3, 4, 6 and their negatives.
        assert_eq!(&w[..8], &[0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]);
        assert_eq!(w[15], -6.0);
        assert_eq!(w[16], -6.0);
    }
}
