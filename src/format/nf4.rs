//! bitsandbytes NF4 ("4-bit NormalFloat", QLoRA): blocks of 64 weights, each a 4-bit index
//! into a fixed table of 16 values in [-1, 1] (quantiles of N(0,1)), times the block's
//! absmax. GGUF has no type for it: the io layer stores our canonical blocks as an I8
//! `<name>.blocks` tensor.
//!
//! # Block layout
//! All multi-byte values are little-endian. In the style of ggml-common.h:
//!
//! ```text
//! // NF4: 4.5 bits per weight
//! typedef struct {
//!     float   absmax;   // scale, f32 as bitsandbytes stores it
//!     uint8_t qs[32];   // byte i: weight 2i in the HIGH nibble, weight 2i + 1 in the low
//! } block_nf4;          // 36 bytes
//! ```
//!
//! The code order is bitsandbytes' (`packed = q[2i] << 4 | q[2i + 1]`), so a bitsandbytes
//! tensor with `blocksize = 64` and no nested quantization (`compress_statistics=False`)
//! maps onto these blocks byte for byte (its absmax array interleaved with its codes).
//! A weight is `NF4[q] * absmax`, an f32 product, with [`NF4_CODES`] the f32 table.
//!
//! The scale is f32 rather than f16: 4.5 instead of 4.25 bits per weight, but exact for
//! any bitsandbytes checkpoint (an f16 absmax would round every weight of the block by up
//! to 2^-11 relative, and overflow above 65504) and no extra rounding step in our own
//! quantizer. bitsandbytes' double quantization (8-bit absmax per 256 blocks, about 4.13
//! bits per weight) is not supported.
//!
//! # Reference quantizer (bitsandbytes' `quantize_4bit`, blockwise, `quant_type="nf4"`)
//! `absmax = max |x|` (f32); `x * (1 / absmax)` (f32; `x / absmax` when `absmax` is an f32
//! subnormal, whose inverse overflows) goes to the nearest table entry by
//! comparing with the f32 midpoints of neighbouring entries: above a midpoint picks the
//! upper entry, a value exactly on one the lower (bitsandbytes' `dQuantizeNF4` tree).
//! For an all-zero block (`absmax = 0`) every code is 7 (the value 0); bitsandbytes' CUDA
//! kernel there multiplies by `1 / 0` and gets code 0, which also dequantizes to 0.
//!
//! # GPU layout
//! Codes are the 4-bit indices in natural order (nibble `j` of word `w` = weight `8w + j`,
//! low nibble first: the canonical nibbles swapped per byte); params are two halves per
//! block, the low and high 16 bits of `absmax`'s f32 bits (read as one u32 word).

use super::{pack_nibbles, Codec};

/// Weights per NF4 block.
pub const QK_NF4: usize = 64;

/// bitsandbytes' NF4 table (exact f32 values), ascending; index 7 is 0.
pub const NF4_CODES: [f32; 16] = [
    -1.0,
    -0.696_192_8,
    -0.525_073_05,
    -0.394_917_5,
    -0.284_441_38,
    -0.184_773_43,
    -0.091_050_036,
    0.0,
    0.079_580_3,
    0.160_930_2,
    0.246_112_3,
    0.337_915_24,
    0.440_709_83,
    0.562_617,
    0.722_956_84,
    1.0,
];

/// f32 midpoints between neighbouring codes (`(c[i] + c[i+1]) / 2` in f64, rounded to f32),
/// the thresholds of bitsandbytes' decision tree.
fn midpoints() -> [f32; 15] {
    std::array::from_fn(|i| ((NF4_CODES[i] as f64 + NF4_CODES[i + 1] as f64) / 2.0) as f32)
}

/// The code of a normalized value: the number of midpoints strictly below it.
fn nearest_code(v: f32, mids: &[f32; 15]) -> u8 {
    mids.iter().filter(|&&m| v > m).count() as u8
}

/// One NF4 block (36 bytes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockNF4 {
    pub absmax: f32,
    pub qs: [u8; QK_NF4 / 2],
}

impl BlockNF4 {
    pub const BYTES: usize = 4 + QK_NF4 / 2;

    /// Serialize to the canonical byte layout.
    pub fn pack(&self, out: &mut [u8]) {
        out[..4].copy_from_slice(&self.absmax.to_le_bytes());
        out[4..Self::BYTES].copy_from_slice(&self.qs);
    }

    /// Parse the canonical byte layout.
    pub fn unpack(b: &[u8]) -> Self {
        BlockNF4 {
            absmax: f32::from_le_bytes(b[..4].try_into().unwrap()),
            qs: b[4..Self::BYTES].try_into().unwrap(),
        }
    }

    /// The 4-bit code of weight `i`, 0..=15 (even weights in the high nibble).
    pub fn code(&self, i: usize) -> u8 {
        let byte = self.qs[i / 2];
        if i.is_multiple_of(2) {
            byte >> 4
        } else {
            byte & 15
        }
    }

    /// bitsandbytes' blockwise NF4 quantizer for one block.
    pub fn quantize(x: &[f32]) -> Self {
        let x = &x[..QK_NF4];
        let absmax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        let mut qs = [0x77u8; QK_NF4 / 2];
        if absmax != 0.0 {
            let inv = 1.0 / absmax;
            // An f32-subnormal absmax has no finite inverse: divide instead.
            let norm = |v: f32| if inv.is_finite() { v * inv } else { v / absmax };
            let mids = midpoints();
            for (q, pair) in qs.iter_mut().zip(x.chunks_exact(2)) {
                *q = nearest_code(norm(pair[0]), &mids) << 4 | nearest_code(norm(pair[1]), &mids);
            }
        }
        BlockNF4 { absmax, qs }
    }

    /// `NF4[q] * absmax` for every weight.
    pub fn dequantize(&self, out: &mut [f32]) {
        for (i, o) in out[..QK_NF4].iter_mut().enumerate() {
            *o = NF4_CODES[self.code(i) as usize] * self.absmax;
        }
    }
}

/// The NF4 format (block 64, f32 absmax).
pub struct NF4;

impl Codec for NF4 {
    fn name(&self) -> String {
        "nf4".into()
    }
    fn block_values(&self) -> usize {
        QK_NF4
    }
    fn block_bytes(&self) -> usize {
        BlockNF4::BYTES
    }
    fn quantize_block(&self, x: &[f32], out: &mut [u8]) {
        BlockNF4::quantize(x).pack(out);
    }
    fn dequantize_block(&self, block: &[u8], out: &mut [f32]) {
        BlockNF4::unpack(block).dequantize(out);
    }
    fn word_values(&self) -> usize {
        8
    }
    fn param_halves(&self) -> usize {
        2
    }
    fn gpu_block(&self, block: &[u8], codes: &mut [u32], params: &mut [u16]) {
        let b = BlockNF4::unpack(block);
        let q: Vec<u8> = (0..QK_NF4).map(|i| b.code(i)).collect();
        for (w, chunk) in codes.iter_mut().zip(q.chunks_exact(8)) {
            *w = pack_nibbles(chunk);
        }
        let bits = b.absmax.to_bits();
        params[0] = bits as u16;
        params[1] = (bits >> 16) as u16;
    }
    fn wgsl(&self) -> &'static str {
        include_str!("../../shaders/formats/nf4.wgsl")
    }
}
