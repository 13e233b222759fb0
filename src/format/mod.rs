//! Weight formats on the CPU: block layouts, quantizers, dequantization, and the GPU repacking.
//!
//! Every format is a [`Codec`]: it turns blocks of `block_values()` f32 weights into
//! `block_bytes()` bytes (its canonical, row-contiguous CPU layout; for GGUF types exactly
//! ggml's block), back into f32, and into the GPU layout the shaders read.
//!
//! Adding a format means: one module here implementing [`Codec`], one WGSL file in
//! `shaders/formats/`, and one variant of [`Format`] (name, parse and `codec()` arm).
//!
//! # GPU layout shared by all formats
//! A weight of `rows` x `k` becomes two planes of `u32` words:
//! - **codes**: each row is `k / word_values()` words; word `i` holds weights
//!   `i * word_values() ..` in order (4-bit: nibble `j` = weight `j`; 8-bit: byte `j`).
//! - **params**: each block has `param_halves()` 16-bit values (f16 scales, integer zero
//!   points); a row holds `blocks * param_halves()` halves, padded to whole words.
//!
//! The format's WGSL file turns a chunk of codes (one `vec4<u32>`) and its params into
//! weights (`chunk_params` and `dequant4`, see `shaders/common.wgsl`), by the same rules
//! the CPU dequantization uses.

// Format names follow GGUF's spelling (Q4_K, IQ4_NL), not Rust's camel case.
#![allow(non_camel_case_types)]

mod binary;
mod f32;
mod int;
mod iq4_nl;
mod kquants;
mod mxfp4;
mod nf4;
mod q2_k;
mod q4_0;
mod q4_1;
mod q4_k;
mod q5;
mod q5_k;
mod q6_k;
mod q8_0;
pub mod reference;
mod sparse;
mod ternary;

pub use self::f32::F32;
pub use binary::BinaryFormat;
pub use int::{IntFormat, IntPlanes};
pub(crate) use iq4_nl::nearest_index as iq4_nl_index;
pub use iq4_nl::{BlockIQ4_NL, IQ4_NL, KVALUES_IQ4NL};
pub use mxfp4::{e8m0_to_f32_half, BlockMXFP4, KVALUES_MXFP4, MXFP4};
pub use nf4::{BlockNF4, NF4, NF4_CODES};
pub use q2_k::{BlockQ2_K, Q2_K};
pub use q4_0::{BlockQ4_0, Q4_0};
pub use q4_1::{BlockQ4_1, Q4_1};
pub(crate) use q4_k::scale_min_k4;
pub use q4_k::{BlockQ4_K, Q4_K, QK_K};
pub use q5::{BlockQ5_0, BlockQ5_1, Q5_0, Q5_1};
pub use q5_k::{BlockQ5_K, Q5_K};
pub use q6_k::{BlockQ6_K, Q6_K};
pub use q8_0::{BlockQ8_0, Q8_0};
pub use sparse::SparseFormat;
pub use ternary::{quantize_absmean as ternary_absmean, BlockTQ1_0, BlockTQ2_0, TQ1_0, TQ2_0};

use crate::error::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// GGUF tensor type ids (`ggml_type`) that wgquant reads or writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum GgmlType {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q2_K = 10,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    IQ4_NL = 20,
    I8 = 24,
    I16 = 25,
    I32 = 26,
    BF16 = 30,
    TQ1_0 = 34,
    TQ2_0 = 35,
    MXFP4 = 39,
}

impl GgmlType {
    /// The type for a GGUF type id, if wgquant supports it.
    pub fn from_id(id: u32) -> Option<GgmlType> {
        use GgmlType::*;
        Some(match id {
            0 => F32,
            1 => F16,
            2 => Q4_0,
            3 => Q4_1,
            6 => Q5_0,
            7 => Q5_1,
            8 => Q8_0,
            10 => Q2_K,
            12 => Q4_K,
            13 => Q5_K,
            14 => Q6_K,
            20 => IQ4_NL,
            24 => I8,
            25 => I16,
            26 => I32,
            30 => BF16,
            34 => TQ1_0,
            35 => TQ2_0,
            39 => MXFP4,
            _ => return None,
        })
    }

    /// (values per block, bytes per block).
    pub fn block_layout(self) -> (usize, usize) {
        use GgmlType::*;
        match self {
            F32 | I32 => (1, 4),
            F16 | BF16 | I16 => (1, 2),
            I8 => (1, 1),
            Q4_0 => (32, 18),
            Q4_1 => (32, 20),
            Q8_0 => (32, 34),
            Q5_0 => (32, 22),
            Q5_1 => (32, 24),
            Q2_K => (256, 84),
            Q4_K => (256, 144),
            Q5_K => (256, 176),
            Q6_K => (256, 210),
            IQ4_NL => (32, 18),
            TQ1_0 => (256, 54),
            TQ2_0 => (256, 66),
            MXFP4 => (32, 17),
        }
    }

    /// The GGUF name of the type.
    pub fn name(self) -> &'static str {
        use GgmlType::*;
        match self {
            F32 => "F32",
            F16 => "F16",
            Q4_0 => "Q4_0",
            Q4_1 => "Q4_1",
            Q8_0 => "Q8_0",
            I8 => "I8",
            I16 => "I16",
            I32 => "I32",
            BF16 => "BF16",
            Q5_0 => "Q5_0",
            Q5_1 => "Q5_1",
            Q2_K => "Q2_K",
            Q4_K => "Q4_K",
            Q5_K => "Q5_K",
            Q6_K => "Q6_K",
            IQ4_NL => "IQ4_NL",
            TQ1_0 => "TQ1_0",
            TQ2_0 => "TQ2_0",
            MXFP4 => "MXFP4",
        }
    }
}

/// What every weight format implements. See the module docs for the GPU layout contract.
pub trait Codec: Sync {
    /// The format's name as users type it (`q4_0`, `int4_g128`, ...).
    fn name(&self) -> String;
    /// Weights per block (one set of scale parameters).
    fn block_values(&self) -> usize;
    /// Bytes per block in the canonical CPU layout.
    fn block_bytes(&self) -> usize;
    /// Quantize one block: `x.len() == block_values()`, `out.len() == block_bytes()`.
    fn quantize_block(&self, x: &[f32], out: &mut [u8]);
    /// Dequantize one block: `block.len() == block_bytes()`, `out.len() == block_values()`.
    fn dequantize_block(&self, block: &[u8], out: &mut [f32]);

    /// Weights per GPU code word (32 / bits).
    fn word_values(&self) -> usize;
    /// 16-bit parameters per block in the GPU params plane.
    fn param_halves(&self) -> usize;
    /// Repack one block into its GPU code words (`block_values() / word_values()` of them)
    /// and params (`param_halves()` of them).
    fn gpu_block(&self, block: &[u8], codes: &mut [u32], params: &mut [u16]);
    /// The format's WGSL file (see `shaders/formats/`).
    fn wgsl(&self) -> &'static str;
    /// Pipeline override constants the format's WGSL needs.
    fn wgsl_constants(&self) -> Vec<(&'static str, f64)> {
        Vec::new()
    }

    /// The GGUF type that stores this format's blocks directly, if there is one.
    fn ggml_type(&self) -> Option<GgmlType> {
        None
    }

    /// For formats whose chunks read several scattered param words: how to gather one
    /// chunk's params into a texel of its own for the texture GEMV of CPU adapters
    /// (`CHUNK_PARAM_TEXELS` in `shaders/common.wgsl`, [`Format::chunk_param_texels`]).
    /// `None` (the default) keeps the params plane's layout there too.
    fn chunk_param_texel(&self) -> Option<ChunkParamTexel> {
        None
    }
}

/// Gathers the params chunk `chunk` of a block needs (its index in the block) into four
/// words, from the block's GPU params (`params`, [`Codec::param_halves`] of them), in the
/// layout the format's `chunk_params_from_texel` in WGSL reads.
pub type ChunkParamTexel = fn(params: &[u16], chunk: usize) -> [u32; 4];

/// A weight format wgquant can quantize to and run kernels on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Plain f32: the baseline the benchmarks compare against.
    F32,
    /// GGUF Q8_0: 32 int8 and one f16 scale (8.5 bits per weight).
    Q8_0,
    /// GGUF Q4_0: 32 4-bit values, one f16 scale (4.5 bits per weight).
    Q4_0,
    /// GGUF Q4_1: 32 4-bit values, f16 scale and min (5 bits per weight).
    Q4_1,
    /// GGUF Q5_0: 32 5-bit values, one f16 scale (5.5 bits per weight).
    Q5_0,
    /// GGUF Q5_1: 32 5-bit values, f16 scale and min (6 bits per weight).
    Q5_1,
    /// GGUF Q2_K: super-blocks of 256, 2-bit values, 4-bit sub-block scales and mins.
    Q2_K,
    /// GGUF Q4_K: super-blocks of 256, 4-bit values, 6-bit sub-block scales and mins.
    Q4_K,
    /// GGUF Q5_K: super-blocks of 256, 5-bit values, 6-bit sub-block scales and mins.
    Q5_K,
    /// GGUF Q6_K: super-blocks of 256, 6-bit values, int8 scales per 16.
    Q6_K,
    /// GGUF IQ4_NL: 32 4-bit indices into a fixed non-linear grid, one f16 scale.
    IQ4_NL,
    /// OCP MXFP4 (GGUF MXFP4): 32 E2M1 values sharing an E8M0 scale.
    MXFP4,
    /// GGUF TQ1_0: ternary weights, 5 trits per byte, one f16 scale per 256 (1.69 bits).
    TQ1_0,
    /// GGUF TQ2_0: ternary weights in 2 bits, one f16 scale per 256 (2.06 bits).
    TQ2_0,
    /// bitsandbytes NF4: 4-bit normal-float codes, one absmax scale per 64 weights.
    NF4,
    /// wgquant 1-bit: sign bits, one f16 scale (mean |w|) per group of 32, 64 or 128.
    Binary(BinaryFormat),
    /// Group-wise int4/int8 of wgquant's own layout.
    Int(IntFormat),
    /// 2:4 sparse int4/int8 of wgquant's own layout: two of every four weights kept, with
    /// their positions (`src/format/sparse.rs`).
    Sparse24(SparseFormat),
}

impl Format {
    /// The formats `bench` and `verify` run by default (every family, common group sizes).
    pub fn defaults() -> Vec<Format> {
        vec![
            Format::F32,
            Format::Q8_0,
            Format::Q4_0,
            Format::Q4_1,
            Format::Int(IntFormat::new(8, 32, false)),
            Format::Int(IntFormat::new(4, 128, false)),
            Format::Int(IntFormat::new(4, 128, true)),
            Format::Sparse24(SparseFormat::new(4, 128)),
        ]
    }

    /// Formats by name, in order without repeats; `all` stands for [`Format::all`].
    pub fn parse_list<S: AsRef<str>>(names: &[S]) -> Result<Vec<Format>> {
        let mut out: Vec<Format> = Vec::new();
        for name in names.iter().map(|n| n.as_ref().trim()) {
            let named = if name.eq_ignore_ascii_case("all") {
                Format::all()
            } else {
                vec![name.parse()?]
            };
            for f in named {
                if !out.contains(&f) {
                    out.push(f);
                }
            }
        }
        Ok(out)
    }

    /// Every format wgquant supports, int variants for every group size and symmetry.
    pub fn all() -> Vec<Format> {
        let mut v = vec![
            Format::F32,
            Format::Q8_0,
            Format::Q4_0,
            Format::Q4_1,
            Format::Q5_0,
            Format::Q5_1,
            Format::Q2_K,
            Format::Q4_K,
            Format::Q5_K,
            Format::Q6_K,
            Format::IQ4_NL,
            Format::MXFP4,
            Format::TQ1_0,
            Format::TQ2_0,
            Format::NF4,
        ];
        for group in [32, 64, 128] {
            v.push(Format::Binary(BinaryFormat::new(group)));
        }
        for bits in [8, 4] {
            for group in [32, 64, 128] {
                for asym in [false, true] {
                    v.push(Format::Int(IntFormat::new(bits, group, asym)));
                }
            }
        }
        for (bits, group) in [(4, 64), (4, 128), (8, 128)] {
            v.push(Format::Sparse24(SparseFormat::new(bits, group)));
        }
        v
    }

    /// The implementation of this format.
    pub fn codec(&self) -> &dyn Codec {
        match self {
            Format::F32 => &F32,
            Format::Q8_0 => &Q8_0,
            Format::Q4_0 => &Q4_0,
            Format::Q4_1 => &Q4_1,
            Format::Q5_0 => &Q5_0,
            Format::Q5_1 => &Q5_1,
            Format::Q2_K => &Q2_K,
            Format::Q4_K => &Q4_K,
            Format::Q5_K => &Q5_K,
            Format::Q6_K => &Q6_K,
            Format::IQ4_NL => &IQ4_NL,
            Format::MXFP4 => &MXFP4,
            Format::TQ1_0 => &TQ1_0,
            Format::TQ2_0 => &TQ2_0,
            Format::NF4 => &NF4,
            Format::Binary(f) => f,
            Format::Int(f) => f,
            Format::Sparse24(f) => f,
        }
    }

    /// The format whose blocks a GGUF type stores directly, if wgquant has one.
    pub fn from_ggml_type(t: GgmlType) -> Option<Format> {
        Format::all()
            .into_iter()
            .find(|f| f.codec().ggml_type() == Some(t))
    }

    /// Whether this is a quantized format (everything but f32).
    pub fn is_quantized(&self) -> bool {
        !matches!(self, Format::F32)
    }

    /// Bits per weight of the canonical layout, scales included.
    pub fn bits_per_weight(&self) -> f64 {
        let c = self.codec();
        8.0 * c.block_bytes() as f64 / c.block_values() as f64
    }

    /// The row length `k` must be a multiple of this (the block, and whole vec4 code loads).
    pub fn k_multiple(&self) -> usize {
        let c = self.codec();
        lcm(c.block_values(), 4 * c.word_values())
    }

    /// Check that rows of length `k` fit this format.
    pub fn check_k(&self, k: usize) -> Result<()> {
        let m = self.k_multiple();
        if k == 0 || !k.is_multiple_of(m) {
            return Err(Error::BlockMismatch {
                format: self.to_string(),
                k,
                multiple: m,
                nearest: self.nearest_fitting(k).map(|f| f.to_string()),
            });
        }
        Ok(())
    }

    /// The quantized format closest to this one in bits per weight whose rows may have
    /// length `k` (for error messages: "K-quants need 256; q4_0 fits").
    pub fn nearest_fitting(&self, k: usize) -> Option<Format> {
        let bits = self.bits_per_weight();
        Format::all()
            .into_iter()
            .filter(|f| f.is_quantized() && f != self && k > 0 && k.is_multiple_of(f.k_multiple()))
            .min_by(|a, b| {
                let da = (a.bits_per_weight() - bits).abs();
                let db = (b.bits_per_weight() - bits).abs();
                da.total_cmp(&db)
            })
    }

    /// Bytes of one row of `k` weights in the canonical layout.
    pub fn row_bytes(&self, k: usize) -> usize {
        let c = self.codec();
        k / c.block_values() * c.block_bytes()
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The least common multiple of `a` and `b`.
pub(crate) fn lcm(a: usize, b: usize) -> usize {
    a / gcd(a, b) * b
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.codec().name())
    }
}

impl FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Format> {
        let lower = s.to_ascii_lowercase();
        Format::all()
            .into_iter()
            .find(|f| f.to_string() == lower)
            .ok_or_else(|| {
                let names: Vec<String> = Format::all().iter().map(|f| f.to_string()).collect();
                Error::UnsupportedFormat(format!(
                    "'{s}' is not a format wgquant knows; choose one of: {}",
                    names.join(", ")
                ))
            })
    }
}

/// A quantized weight matrix on the CPU: `rows` rows of `k` weights in the format's
/// canonical layout, row after row.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantizedTensor {
    format: Format,
    rows: usize,
    k: usize,
    data: Vec<u8>,
}

/// Tensors with at least this many values are quantized on several threads.
const PARALLEL_QUANTIZE_VALUES: usize = 1 << 20;

impl QuantizedTensor {
    /// Quantize `rows` x `k` f32 weights (row-major) with the format's reference quantizer.
    pub fn quantize(format: Format, weights: &[f32], rows: usize, k: usize) -> Result<Self> {
        format.check_k(k)?;
        check_len("weights", weights.len(), rows, k)?;
        let c = format.codec();
        let (bv, bb) = (c.block_values(), c.block_bytes());
        let mut data = vec![0u8; rows * format.row_bytes(k)];
        // Blocks are independent, so large tensors are split across threads (same bytes as
        // one thread: each block's output depends only on its own values).
        let blocks = weights.len() / bv;
        let threads = if weights.len() < PARALLEL_QUANTIZE_VALUES {
            1
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        };
        let per_thread = blocks.div_ceil(threads.max(1)).max(1);
        let quantize_blocks = |w: &[f32], d: &mut [u8]| {
            for (x, out) in w.chunks_exact(bv).zip(d.chunks_exact_mut(bb)) {
                c.quantize_block(x, out);
            }
        };
        if threads <= 1 {
            // Inline, not on a thread of its own (a web page has no threads).
            quantize_blocks(weights, &mut data);
        } else {
            std::thread::scope(|scope| {
                for (w, d) in weights
                    .chunks(per_thread * bv)
                    .zip(data.chunks_mut(per_thread * bb))
                {
                    let quantize_blocks = &quantize_blocks;
                    scope.spawn(move || quantize_blocks(w, d));
                }
            });
        }
        Ok(QuantizedTensor {
            format,
            rows,
            k,
            data,
        })
    }

    /// Wrap existing canonical bytes (e.g. read from a GGUF file), checking their size.
    pub fn from_bytes(format: Format, rows: usize, k: usize, data: Vec<u8>) -> Result<Self> {
        format.check_k(k)?;
        let want = rows
            .checked_mul(format.row_bytes(k))
            .ok_or_else(|| Error::Shape(format!("{rows} x {k} overflows")))?;
        if data.len() != want {
            return Err(Error::Shape(format!(
                "{format} tensor of {rows} x {k} needs {want} bytes, got {}",
                data.len()
            )));
        }
        Ok(QuantizedTensor {
            format,
            rows,
            k,
            data,
        })
    }

    pub fn format(&self) -> Format {
        self.format
    }
    /// Number of rows (output features).
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Row length (input features).
    pub fn k(&self) -> usize {
        self.k
    }
    /// Canonical bytes, row after row.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }
    /// The canonical bytes of rows `r`.
    pub fn row_range_bytes(&self, r: std::ops::Range<usize>) -> &[u8] {
        let rb = self.format.row_bytes(self.k);
        &self.data[r.start * rb..r.end * rb]
    }

    /// Dequantize every weight to f32, row-major.
    pub fn dequantize(&self) -> Vec<f32> {
        let c = self.format.codec();
        let mut out = vec![0f32; self.rows * self.k];
        for (b, o) in self
            .data
            .chunks_exact(c.block_bytes())
            .zip(out.chunks_exact_mut(c.block_values()))
        {
            c.dequantize_block(b, o);
        }
        out
    }

    /// The GPU planes (codes, params) of rows `r`; see the module docs for the layout.
    pub fn gpu_planes(&self, r: std::ops::Range<usize>) -> (Vec<u32>, Vec<u32>) {
        let c = self.format.codec();
        let blocks = self.k / c.block_values();
        let words_per_block = c.block_values() / c.word_values();
        let halves_per_row = blocks * c.param_halves();
        let param_words_per_row = halves_per_row.div_ceil(2);
        let n = r.len();
        let mut codes = vec![0u32; n * blocks * words_per_block];
        let mut params = vec![0u32; (n * param_words_per_row).max(1)];
        let mut halves = vec![0u16; param_words_per_row * 2];
        let bytes = self.row_range_bytes(r);
        for (i, row) in bytes
            .chunks_exact(self.format.row_bytes(self.k))
            .enumerate()
        {
            halves.fill(0);
            let row_codes = &mut codes[i * blocks * words_per_block..][..blocks * words_per_block];
            for (bi, block) in row.chunks_exact(c.block_bytes()).enumerate() {
                c.gpu_block(
                    block,
                    &mut row_codes[bi * words_per_block..][..words_per_block],
                    &mut halves[bi * c.param_halves()..][..c.param_halves()],
                );
            }
            for (w, pair) in params[i * param_words_per_row..][..param_words_per_row]
                .iter_mut()
                .zip(halves.chunks_exact(2))
            {
                *w = pair[0] as u32 | (pair[1] as u32) << 16;
            }
        }
        (codes, params)
    }
}

impl Format {
    /// The params plane `params` of whole rows of length `k` (as [`QuantizedTensor::gpu_planes`]
    /// returns it) rearranged into one texel (four words) per code chunk, row after row, where
    /// the format has such a layout ([`Codec::chunk_param_texel`]): the texture GEMV of CPU
    /// adapters then fetches a chunk's params once (q6_k: four fetches before), where on
    /// lavapipe every fetch costs about as much as the arithmetic of a few weights (see
    /// `docs/BENCHMARKS.md`, "a texel of params per chunk"). Only chunks within a block
    /// (`4 * word_values() <= block_values()`) can have one.
    pub fn chunk_param_texels(self, k: usize, params: &[u32]) -> Option<Vec<u32>> {
        let c = self.codec();
        let texel = c.chunk_param_texel()?;
        let chunk_values = 4 * c.word_values();
        assert!(
            chunk_values <= c.block_values(),
            "{self}: chunks span blocks"
        );
        let (blocks, halves) = (k / c.block_values(), c.param_halves());
        let row_words = (blocks * halves).div_ceil(2);
        if row_words == 0 {
            return Some(Vec::new());
        }
        let rows = params.len() / row_words;
        let chunks = c.block_values() / chunk_values;
        let mut out = Vec::with_capacity(rows * blocks * chunks * 4);
        let mut row_halves = Vec::with_capacity(2 * row_words);
        for row in params.chunks_exact(row_words) {
            row_halves.clear();
            row_halves.extend(row.iter().flat_map(|&w| [w as u16, (w >> 16) as u16]));
            for block in row_halves.chunks_exact(halves).take(blocks) {
                for chunk in 0..chunks {
                    out.extend(texel(block, chunk));
                }
            }
        }
        Some(out)
    }
}

/// Check that a row-major buffer holds `rows` x `cols` values.
pub(crate) fn check_len(what: &str, len: usize, rows: usize, cols: usize) -> Result<()> {
    match rows.checked_mul(cols) {
        Some(n) if n == len => Ok(()),
        _ => Err(Error::Shape(format!(
            "{what} holds {len} values, expected {rows} x {cols}"
        ))),
    }
}

/// Round half away from zero, as C's `roundf` (ggml's reference quantizers use it).
pub(crate) fn round_away(x: f32) -> f32 {
    x.round()
}

/// Pack 8 nibbles (low nibble first) into a GPU code word.
pub(crate) fn pack_nibbles(q: &[u8]) -> u32 {
    q.iter()
        .enumerate()
        .fold(0u32, |w, (j, &v)| w | ((v as u32 & 15) << (4 * j)))
}

/// Pack 4 bytes (first byte lowest) into a GPU code word.
pub(crate) fn pack_bytes(q: &[u8]) -> u32 {
    u32::from_le_bytes([q[0], q[1], q[2], q[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Texels of a random `rows` x `k` weight of `format`, one per chunk, each with its
    /// block's canonical bytes and its index in the block.
    fn chunk_texels(format: Format, rows: usize, k: usize) -> Vec<([u32; 4], Vec<u8>, usize)> {
        let mut s = 0x2545_f491u32;
        let w: Vec<f32> = (0..rows * k)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1u32 << 23) as f32 - 1.0
            })
            .collect();
        let t = QuantizedTensor::quantize(format, &w, rows, k).unwrap();
        let (_, params) = t.gpu_planes(0..rows);
        let texels = format.chunk_param_texels(k, &params).unwrap();
        let c = format.codec();
        let per_block = c.block_values() / (4 * c.word_values());
        assert_eq!(texels.len(), 4 * rows * k / (4 * c.word_values()));
        texels
            .chunks_exact(4)
            .enumerate()
            .map(|(i, tx)| {
                let block = &t.bytes()[i / per_block * c.block_bytes()..][..c.block_bytes()];
                (tx.try_into().unwrap(), block.to_vec(), i % per_block)
            })
            .collect()
    }

    #[test]
    fn q6_k_chunk_texels_hold_high_bits_and_scaled_d() {
        for (tx, block, c) in chunk_texels(Format::Q6_K, 3, 512) {
            let b = BlockQ6_K::unpack(&block);
            for j in 0..32 {
                let hi = (tx[j / 16] >> (2 * (j % 16))) & 3;
                assert_eq!(hi as u8, b.code(32 * c + j) >> 4);
            }
            for g in 0..2 {
                let ds = b.d.to_f32() * b.scales[2 * c + g] as f32;
                assert_eq!(f32::from_bits(tx[2 + g]), ds);
            }
        }
    }

    #[test]
    fn q5_k_chunk_texels_hold_scaled_d_and_min_and_fifth_bits() {
        for (tx, block, j) in chunk_texels(Format::Q5_K, 3, 512) {
            let b = BlockQ5_K::unpack(&block);
            let (sc, m) = b.scale_min(j);
            assert_eq!(f32::from_bits(tx[0]), b.d.to_f32() * sc as f32);
            assert_eq!(f32::from_bits(tx[1]), b.dmin.to_f32() * m as f32);
            for l in 0..32 {
                assert_eq!(((tx[2] >> l) & 1) as u8, b.code(32 * j + l) >> 4);
            }
            assert_eq!(tx[3], 0);
        }
    }

    #[test]
    fn q5_0_chunk_texels_hold_d_and_fifth_bits() {
        for (tx, block, _) in chunk_texels(Format::Q5_0, 3, 96) {
            let b = BlockQ5_0::unpack(&block);
            assert_eq!(f32::from_bits(tx[0]), b.d.to_f32());
            assert_eq!(tx[1], b.qh);
            assert_eq!(tx[2..], [0, 0]);
        }
    }

    #[test]
    fn q2_k_chunk_texels_hold_scales_and_both_ds() {
        for (tx, block, c) in chunk_texels(Format::Q2_K, 3, 512) {
            let b = BlockQ2_K::unpack(&block);
            assert_eq!(tx[0].to_le_bytes(), b.scales[4 * c..4 * c + 4]);
            assert_eq!(
                tx[1],
                b.d.to_bits() as u32 | (b.dmin.to_bits() as u32) << 16
            );
            assert_eq!(tx[2..], [0, 0]);
        }
    }

    #[test]
    fn sparse_chunk_texels_hold_the_scale_and_the_chunks_positions() {
        for (bits, group) in [(4, 64), (4, 128), (8, 128)] {
            let f = Format::Sparse24(SparseFormat::new(bits, group));
            let chunk_groups = 4 * f.codec().word_values() / 4;
            for (tx, block, c) in chunk_texels(f, 3, 512) {
                assert_eq!(
                    tx[0],
                    u16::from_le_bytes([block[0], block[1]]) as u32,
                    "{f}"
                );
                // Position bytes of the chunk's groups: 4 bits each, after scale and codes.
                let pos = &block[block.len() - group / 8..];
                let bytes = &pos[c * chunk_groups / 2..(c + 1) * chunk_groups / 2];
                let words: Vec<u32> = bytes
                    .chunks_exact(4)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                assert_eq!(tx[1..1 + words.len()], words[..], "{f} chunk {c}");
                assert!(tx[1 + words.len()..].iter().all(|&w| w == 0), "{f}");
            }
        }
    }

    #[test]
    fn only_formats_with_scattered_params_have_chunk_texels() {
        let with: Vec<Format> = Format::all()
            .into_iter()
            .filter(|f| f.codec().chunk_param_texel().is_some())
            .collect();
        let sparse = |bits, group| Format::Sparse24(SparseFormat::new(bits, group));
        assert_eq!(
            with,
            [
                Format::Q5_0,
                Format::Q2_K,
                Format::Q5_K,
                Format::Q6_K,
                sparse(4, 64),
                sparse(4, 128),
                sparse(8, 128)
            ]
        );
        assert_eq!(Format::Q4_0.chunk_param_texels(32, &[0]), None);
    }
}
