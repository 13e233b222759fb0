//! Block grids: "quantize this block with this scale (and min or zero point)" for the
//! formats whose blocks are one linear grid, without touching the [`Codec`](crate::format::Codec) trait.
//!
//! A [`BlockSpec`] knows, for one format, the grid its codes lie on ([`Grid`]), the
//! reference (round-to-nearest) parameters of a block ([`BlockSpec::rtn_params`]), the code
//! of one value for given parameters ([`BlockSpec::code`]), the value a code stands for
//! ([`BlockSpec::value`]) and how to write a block's canonical bytes
//! ([`BlockSpec::encode`]). With the reference parameters, `encode` writes exactly the bytes
//! of the format's `quantize_block` (tested), and `value` is exactly its `dequantize_block`.
//!
//! Covered: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL (a scale times a fixed table of 16
//! levels) and every int format. Another format of one scale (and min) per block needs one
//! arm in [`BlockSpec::new`], its RTN rule, its code rule and its packing in `encode`.

use crate::format::Format as F;
use crate::format::{BlockIQ4_NL, Format, IntFormat, SparseFormat, KVALUES_IQ4NL};
use half::f16;

/// The grid a block's values lie on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grid {
    /// `w = d * q`, `q` in `qmin..=qmax`; `signed_scale`: `d` may be negative (the GGUF
    /// types, whose reference maps the value of largest magnitude to `qmin`).
    Scale {
        qmin: i32,
        qmax: i32,
        signed_scale: bool,
    },
    /// `w = d * q + m`, `q` in `0..=qmax`, `m` a free f16 (Q4_1).
    ScaleMin { qmax: i32 },
    /// `w = s * (q - z)`, `q` and the integer zero point `z` in `0..=qmax` (int asym).
    ScaleZero { qmax: i32 },
    /// `w = d * levels[q]`, `q` in `0..16` (IQ4_NL); `d` may be negative.
    Table { levels: &'static [i8; 16] },
}

/// The parameters of one block. Values are f32; the block stores them as f16 (the code rule
/// of the GGUF types uses the f32 `d`, as ggml's reference does; [`BlockSpec::stored`]
/// rounds them so that codes are chosen for exactly the stored scale).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BlockParams {
    Scale { d: f32 },
    ScaleMin { d: f32, m: f32 },
    ScaleZero { s: f32, z: i32 },
}

/// f16 of a scale as the int formats store it: saturating to the largest finite f16.
fn f16_sat(v: f32) -> f16 {
    let h = f16::from_f32(v);
    if h.is_infinite() {
        if v < 0.0 {
            f16::MIN
        } else {
            f16::MAX
        }
    } else {
        h
    }
}

/// Which code rule a [`Prepared`] applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rule {
    Q4_0,
    Q5_0,
    Q8_0,
    Q4_1,
    Q5_1,
    IntSym,
    IntAsym,
    Iq4Nl,
}

/// Block parameters prepared by [`BlockSpec::prepare`] for coding many values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prepared {
    rule: Rule,
    /// The code rule's scale: the reciprocal of the f32 `d` (GGUF types, as ggml), or the
    /// stored f16 scale (int formats, which divide by it).
    a: f32,
    /// Q4_1's f32 min for the code rule.
    m: f32,
    /// Int asym zero point.
    z: f32,
    /// Code clamp range (int formats).
    lo: f32,
    hi: f32,
    /// Stored scale and min for the value.
    vd: f32,
    vm: f32,
}

impl Prepared {
    fn new(rule: Rule, a: f32, vd: f32) -> Prepared {
        Prepared {
            rule,
            a,
            m: 0.0,
            z: 0.0,
            lo: 0.0,
            hi: 0.0,
            vd,
            vm: 0.0,
        }
    }

    /// The code of `v` (see [`BlockSpec::code`]).
    #[inline]
    pub fn code(&self, v: f32) -> i32 {
        match self.rule {
            // ggml: min(15, (int8_t)(v * id + 8.5)); truncation is floor for the
            // non-negative values the reference produces; clamp below for the rest.
            Rule::Q4_0 => ((v * self.a + 8.5).floor().clamp(0.0, 15.0) as i32) - 8,
            // ggml: min(31, (int8_t)(v * id + 16.5)), as Q4_0.
            Rule::Q5_0 => ((v * self.a + 16.5).floor().clamp(0.0, 31.0) as i32) - 16,
            Rule::Q8_0 => (v * self.a).round().clamp(-128.0, 127.0) as i32,
            Rule::Q4_1 => ((v - self.m) * self.a + 0.5).floor().clamp(0.0, 15.0) as i32,
            Rule::Q5_1 => ((v - self.m) * self.a + 0.5).floor().clamp(0.0, 31.0) as i32,
            // ggml: best_index_int8(16, kvalues_iq4nl, id * v).
            Rule::Iq4Nl => crate::format::iq4_nl_index(v * self.a) as i32,
            Rule::IntSym if self.a == 0.0 => 0,
            Rule::IntSym => (v / self.a).round().clamp(self.lo, self.hi) as i32,
            Rule::IntAsym if self.a == 0.0 => 0,
            Rule::IntAsym => ((v / self.a).round() + self.z).clamp(0.0, self.hi) as i32,
        }
    }

    /// The value of code `q` (see [`BlockSpec::value`]).
    #[inline]
    pub fn value(&self, q: i32) -> f32 {
        match self.rule {
            // Q4_0 (q - 8 + 8), Q8_0 and int sym ((q + z) - z) are all exactly d * q.
            Rule::Q4_0 | Rule::Q5_0 | Rule::Q8_0 | Rule::IntSym => q as f32 * self.vd,
            Rule::Q4_1 | Rule::Q5_1 => q as f32 * self.vd + self.vm,
            Rule::IntAsym => self.vd * (q as f32 - self.z),
            Rule::Iq4Nl => self.vd * KVALUES_IQ4NL[q as usize] as f32,
        }
    }
}

/// Which canonical layout [`BlockSpec::encode`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Iq4Nl,
    Int(IntFormat),
    /// Symmetric int codes of the kept two of every four weights (the weights must be
    /// pruned to 2:4 already: `encode_codes` keeps each group's two largest codes).
    Sparse24(SparseFormat),
}

/// The grid, reference parameters, code rule and byte layout of one format's blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockSpec {
    format: Format,
    layout: Layout,
    grid: Grid,
    group: usize,
}

impl BlockSpec {
    /// The spec of `format`, if its blocks are one grid of a scale (and min) wgquant knows
    /// (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, int*). `None` for every other format.
    pub fn new(format: Format) -> Option<BlockSpec> {
        let (layout, grid, group) = match format {
            F::Q4_0 => (
                Layout::Q4_0,
                Grid::Scale {
                    qmin: -8,
                    qmax: 7,
                    signed_scale: true,
                },
                32,
            ),
            F::Q8_0 => (
                Layout::Q8_0,
                Grid::Scale {
                    qmin: -128,
                    qmax: 127,
                    signed_scale: true,
                },
                32,
            ),
            F::Q5_0 => (
                Layout::Q5_0,
                Grid::Scale {
                    qmin: -16,
                    qmax: 15,
                    signed_scale: true,
                },
                32,
            ),
            F::Q4_1 => (Layout::Q4_1, Grid::ScaleMin { qmax: 15 }, 32),
            F::Q5_1 => (Layout::Q5_1, Grid::ScaleMin { qmax: 31 }, 32),
            F::IQ4_NL => (
                Layout::Iq4Nl,
                Grid::Table {
                    levels: &KVALUES_IQ4NL,
                },
                32,
            ),
            F::Int(f) if matches!(f.bits, 4 | 8) => {
                let half = 1i32 << (f.bits - 1);
                let grid = if f.asym {
                    Grid::ScaleZero { qmax: 2 * half - 1 }
                } else {
                    // Code 0 (q = -half) would read fine, but the layout promises it is
                    // never written (and the reference clamps to +-qmax even when the
                    // scale saturates), so the grid is symmetric.
                    Grid::Scale {
                        qmin: 1 - half,
                        qmax: half - 1,
                        signed_scale: false,
                    }
                };
                (Layout::Int(f), grid, f.group)
            }
            F::Sparse24(f) => {
                let half = 1i32 << (f.bits - 1);
                let grid = Grid::Scale {
                    qmin: 1 - half,
                    qmax: half - 1,
                    signed_scale: false,
                };
                (Layout::Sparse24(f), grid, f.group)
            }
            _ => return None,
        };
        Some(BlockSpec {
            format,
            layout,
            grid,
            group,
        })
    }

    pub fn format(&self) -> Format {
        self.format
    }
    pub fn grid(&self) -> Grid {
        self.grid
    }
    /// Weights per block (the format's group).
    pub fn group(&self) -> usize {
        self.group
    }

    /// f16 of a stored scale or min: ggml's plain conversion for the GGUF types (which may
    /// give infinity), saturating for the int formats (as their reference does).
    fn half(&self, v: f32) -> f16 {
        match self.layout {
            Layout::Int(_) | Layout::Sparse24(_) => f16_sat(v),
            _ => f16::from_f32(v),
        }
    }

    /// The parameters rounded to what the block stores.
    pub fn stored(&self, p: BlockParams) -> BlockParams {
        let h = |v: f32| self.half(v).to_f32();
        match p {
            BlockParams::Scale { d } => BlockParams::Scale { d: h(d) },
            BlockParams::ScaleMin { d, m } => BlockParams::ScaleMin { d: h(d), m: h(m) },
            BlockParams::ScaleZero { s, z } => BlockParams::ScaleZero { s: h(s), z },
        }
    }

    /// The parameters the format's reference quantizer chooses for block `x`.
    pub fn rtn_params(&self, x: &[f32]) -> BlockParams {
        let x = &x[..self.group];
        match self.layout {
            Layout::Q4_0 | Layout::Q5_0 => {
                // ggml: the value of largest magnitude, sign kept, first one wins ties,
                // onto the lowest code (-8 or -16).
                let (mut amax, mut max) = (0.0f32, 0.0f32);
                for &v in x {
                    if amax < v.abs() {
                        amax = v.abs();
                        max = v;
                    }
                }
                let lowest = if self.layout == Layout::Q4_0 {
                    -8.0
                } else {
                    -16.0
                };
                BlockParams::Scale { d: max / lowest }
            }
            Layout::Iq4Nl => {
                // ggml's quantize_iq4_nl without an importance matrix (weights x^2).
                let w: Vec<f32> = x.iter().map(|v| v * v).collect();
                BlockParams::Scale {
                    d: BlockIQ4_NL::search_scale(x, &w, 7),
                }
            }
            Layout::Q8_0 => {
                let amax = x.iter().fold(0.0f32, |a, &v| a.max(v.abs()));
                BlockParams::Scale { d: amax / 127.0 }
            }
            Layout::Q4_1 | Layout::Q5_1 => {
                let qmax = if self.layout == Layout::Q4_1 {
                    15.0
                } else {
                    31.0
                };
                let (mut min, mut max) = (f32::MAX, -f32::MAX);
                for &v in x {
                    if v < min {
                        min = v;
                    }
                    if v > max {
                        max = v;
                    }
                }
                BlockParams::ScaleMin {
                    d: (max - min) / qmax,
                    m: min,
                }
            }
            Layout::Sparse24(f) => {
                let qmax = ((1u32 << (f.bits - 1)) - 1) as f32;
                let amax = x.iter().fold(0.0f32, |a, &v| a.max(v.abs()));
                BlockParams::Scale {
                    d: f16_sat(amax / qmax).to_f32(),
                }
            }
            Layout::Int(f) => {
                if f.asym {
                    let qmax = ((1u32 << f.bits) - 1) as f32;
                    let (lo, hi) = x
                        .iter()
                        .fold((0.0f32, 0.0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
                    let s = f16_sat((hi - lo) / qmax).to_f32();
                    let z = if s == 0.0 {
                        0
                    } else {
                        (-lo / s).round().clamp(0.0, qmax) as i32
                    };
                    BlockParams::ScaleZero { s, z }
                } else {
                    let qmax = ((1u32 << (f.bits - 1)) - 1) as f32;
                    let amax = x.iter().fold(0.0f32, |a, &v| a.max(v.abs()));
                    BlockParams::Scale {
                        d: f16_sat(amax / qmax).to_f32(),
                    }
                }
            }
        }
    }

    /// `p` prepared for coding many values (the scale reciprocal or stored f16 scale the
    /// code rule uses, and the stored values the dequantization uses).
    pub fn prepare(&self, p: BlockParams) -> Prepared {
        let recip = |d: f32| if d != 0.0 { 1.0 / d } else { 0.0 };
        let st = self.stored(p);
        match (self.layout, p, st) {
            (Layout::Q4_0, BlockParams::Scale { d }, BlockParams::Scale { d: vd }) => {
                Prepared::new(Rule::Q4_0, recip(d), vd)
            }
            (Layout::Q8_0, BlockParams::Scale { d }, BlockParams::Scale { d: vd }) => {
                Prepared::new(Rule::Q8_0, recip(d), vd)
            }
            (Layout::Q5_0, BlockParams::Scale { d }, BlockParams::Scale { d: vd }) => {
                Prepared::new(Rule::Q5_0, recip(d), vd)
            }
            (Layout::Iq4Nl, BlockParams::Scale { d }, BlockParams::Scale { d: vd }) => {
                Prepared::new(Rule::Iq4Nl, recip(d), vd)
            }
            (
                Layout::Q4_1 | Layout::Q5_1,
                BlockParams::ScaleMin { d, m },
                BlockParams::ScaleMin { d: vd, m: vm },
            ) => Prepared {
                m,
                vm,
                ..Prepared::new(
                    if self.layout == Layout::Q4_1 {
                        Rule::Q4_1
                    } else {
                        Rule::Q5_1
                    },
                    recip(d),
                    vd,
                )
            },
            (
                Layout::Int(_) | Layout::Sparse24(_),
                BlockParams::Scale { .. },
                BlockParams::Scale { d: s },
            ) => {
                let Grid::Scale { qmin, qmax, .. } = self.grid else {
                    unreachable!()
                };
                Prepared {
                    lo: qmin as f32,
                    hi: qmax as f32,
                    ..Prepared::new(Rule::IntSym, s, s)
                }
            }
            (Layout::Int(_), BlockParams::ScaleZero { .. }, BlockParams::ScaleZero { s, z }) => {
                let Grid::ScaleZero { qmax } = self.grid else {
                    unreachable!()
                };
                Prepared {
                    z: z as f32,
                    hi: qmax as f32,
                    ..Prepared::new(Rule::IntAsym, s, s)
                }
            }
            _ => panic!("{}: parameters {p:?} do not fit its grid", self.format),
        }
    }

    /// The code of value `v` with parameters `p`, by the format's reference rule, clamped to
    /// the grid: `q` for [`Grid::Scale`] (signed), the unsigned code otherwise.
    pub fn code(&self, p: BlockParams, v: f32) -> i32 {
        self.prepare(p).code(v)
    }

    /// The value code `q` stands for, exactly as the format's `dequantize_block` computes it.
    pub fn value(&self, p: BlockParams, q: i32) -> f32 {
        self.prepare(p).value(q)
    }

    /// Sum of squared errors of block `x` quantized with `p`.
    pub fn sse(&self, p: BlockParams, x: &[f32]) -> f64 {
        self.sse_weighted(p, x, None)
    }

    /// Sum of squared errors of block `x` quantized with `p`, weighted by `w` where given.
    pub fn sse_weighted(&self, p: BlockParams, x: &[f32], w: Option<&[f32]>) -> f64 {
        let pp = self.prepare(p);
        x[..self.group]
            .iter()
            .enumerate()
            .map(|(j, &v)| {
                let e = (pp.value(pp.code(v)) - v) as f64;
                w.map_or(1.0, |w| w[j] as f64) * e * e
            })
            .sum()
    }

    /// Write the canonical bytes of block `x` quantized with `p` (codes by [`Self::code`]).
    /// `out.len()` must be the format's block bytes.
    pub fn encode(&self, x: &[f32], p: BlockParams, out: &mut [u8]) {
        let pp = self.prepare(p);
        let codes: Vec<i32> = x[..self.group].iter().map(|&v| pp.code(v)).collect();
        self.encode_codes(&codes, p, out);
    }

    /// Write the canonical bytes of a block from its codes (as [`Self::code`] returns them).
    pub fn encode_codes(&self, codes: &[i32], p: BlockParams, out: &mut [u8]) {
        debug_assert_eq!(codes.len(), self.group);
        debug_assert_eq!(out.len(), self.format.codec().block_bytes());
        let nib = |q: &[i32], off: i32, out: &mut [u8]| {
            for j in 0..16 {
                out[j] = ((q[j] + off) as u8 & 15) | (((q[j + 16] + off) as u8 & 15) << 4);
            }
        };
        match (self.layout, p) {
            (Layout::Q4_0, BlockParams::Scale { d }) => {
                out[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
                nib(codes, 8, &mut out[2..18]);
            }
            (Layout::Q8_0, BlockParams::Scale { d }) => {
                out[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
                for (o, &q) in out[2..34].iter_mut().zip(codes) {
                    *o = q as i8 as u8;
                }
            }
            (Layout::Q4_1, BlockParams::ScaleMin { d, m }) => {
                out[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
                out[2..4].copy_from_slice(&f16::from_f32(m).to_le_bytes());
                nib(codes, 0, &mut out[4..20]);
            }
            (Layout::Iq4Nl, BlockParams::Scale { d }) => {
                out[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
                nib(codes, 0, &mut out[2..18]);
            }
            (Layout::Q5_0, BlockParams::Scale { d }) => {
                out[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
                let qh = fifth_bits(codes, 16);
                out[2..6].copy_from_slice(&qh.to_le_bytes());
                nib(codes, 16, &mut out[6..22]);
            }
            (Layout::Q5_1, BlockParams::ScaleMin { d, m }) => {
                out[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
                out[2..4].copy_from_slice(&f16::from_f32(m).to_le_bytes());
                let qh = fifth_bits(codes, 0);
                out[4..8].copy_from_slice(&qh.to_le_bytes());
                nib(codes, 0, &mut out[8..24]);
            }
            (Layout::Sparse24(f), BlockParams::Scale { d }) => {
                // Each group keeps its two largest codes (ties: the lower position), so
                // weights pruned to 2:4 keep their pattern. The spec is for weights pruned
                // already: a third nonzero code would be dropped here, unseen by GPTQ.
                let off = 1i32 << (f.bits - 1);
                let cb = f.group / 2 * f.bits as usize / 8;
                out.fill(0);
                out[..2].copy_from_slice(&f16_sat(d).to_le_bytes());
                let (qs, pos) = out[2..].split_at_mut(cb);
                for (i, g) in codes.chunks_exact(4).enumerate() {
                    let (p0, p1) =
                        SparseFormat::kept(&[g[0] as f32, g[1] as f32, g[2] as f32, g[3] as f32]);
                    let (q0, q1) = ((g[p0] + off) as u8, (g[p1] + off) as u8);
                    if f.bits == 4 {
                        qs[i] = (q0 & 15) | (q1 << 4);
                    } else {
                        qs[2 * i] = q0;
                        qs[2 * i + 1] = q1;
                    }
                    pos[i / 2] |= ((p0 | p1 << 2) as u8) << (4 * (i & 1));
                }
            }
            (Layout::Int(f), p) => {
                let (s, z, head, off) = match p {
                    BlockParams::Scale { d } => (d, 1i32 << (f.bits - 1), 2, 1i32 << (f.bits - 1)),
                    BlockParams::ScaleZero { s, z } => (s, z, 3, 0),
                    _ => panic!("{}: parameters {p:?} do not fit its grid", self.format),
                };
                out[..2].copy_from_slice(&f16_sat(s).to_le_bytes());
                if head == 3 {
                    out[2] = z as u8;
                }
                let qs = &mut out[head..];
                if f.bits == 4 {
                    for (b, pair) in qs.iter_mut().zip(codes.chunks_exact(2)) {
                        *b = ((pair[0] + off) as u8 & 15) | (((pair[1] + off) as u8 & 15) << 4);
                    }
                } else {
                    for (b, &q) in qs.iter_mut().zip(codes) {
                        *b = (q + off) as u8;
                    }
                }
            }
            _ => panic!("{}: parameters {p:?} do not fit its grid", self.format),
        }
    }
}

/// The fifth bits of 32 codes (plus `off`) as Q5_0/Q5_1's `qh`: bit `j` for weight `j`.
fn fifth_bits(codes: &[i32], off: i32) -> u32 {
    codes
        .iter()
        .enumerate()
        .fold(0, |qh, (j, &q)| qh | ((((q + off) as u32) >> 4) & 1) << j)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn covered() -> Vec<Format> {
        let mut v = vec![F::Q4_0, F::Q4_1, F::Q5_0, F::Q5_1, F::Q8_0, F::IQ4_NL];
        for bits in [4, 8] {
            for group in [32, 64, 128] {
                for asym in [false, true] {
                    v.push(F::Int(IntFormat::new(bits, group, asym)));
                }
            }
        }
        v
    }

    fn blocks(group: usize) -> Vec<Vec<f32>> {
        let mut rng = Rng::new(7);
        let mut v: Vec<Vec<f32>> = (0..200)
            .map(|i| {
                let scale = [1.0f32, 1e-3, 1e3, 1e-6, 7e4][i % 5];
                (0..group)
                    .map(|_| {
                        let n = rng.normal() as f32;
                        // Some heavy tails and some all-positive / all-negative blocks.
                        match i % 4 {
                            0 => n * scale,
                            1 => n.abs() * scale,
                            2 => -n.abs() * scale,
                            _ => (n * n * n) * scale,
                        }
                    })
                    .collect()
            })
            .collect();
        v.push(vec![0.0; group]);
        v.push(vec![-0.0; group]);
        v.push(vec![3.25; group]);
        v.push(vec![-1e-9; group]);
        let mut ties = vec![0.0; group];
        ties[0] = 1.0;
        ties[1] = -1.0;
        v.push(ties);
        v
    }

    /// On weights pruned to 2:4 (the only input it is meant for), RTN through the 2:4
    /// sparse spec dequantizes exactly as the format's reference quantizer (positions may
    /// differ only where both candidates read as zero).
    #[test]
    fn sparse_rtn_through_spec_is_the_reference_on_pruned_weights() {
        for (bits, group) in [(4, 64), (4, 128), (8, 128)] {
            let f = F::Sparse24(SparseFormat::new(bits, group));
            let spec = BlockSpec::new(f).unwrap();
            let c = f.codec();
            let (mut want, mut got) = (vec![0u8; c.block_bytes()], vec![0u8; c.block_bytes()]);
            let (mut dw, mut dg) = (vec![0f32; group], vec![0f32; group]);
            for mut x in blocks(group) {
                SparseFormat::prune(&mut x);
                c.quantize_block(&x, &mut want);
                spec.encode(&x, spec.rtn_params(&x), &mut got);
                c.dequantize_block(&want, &mut dw);
                c.dequantize_block(&got, &mut dg);
                for (a, b) in dw.iter().zip(&dg) {
                    assert_eq!(a, b, "{f} block {x:?}");
                }
            }
        }
    }

    /// RTN through the block spec is byte for byte the format's reference quantizer, and
    /// `value` is exactly its dequantization.
    #[test]
    fn rtn_through_spec_is_the_reference() {
        for f in covered() {
            let spec = BlockSpec::new(f).unwrap();
            let c = f.codec();
            let mut want = vec![0u8; c.block_bytes()];
            let mut got = vec![0u8; c.block_bytes()];
            let mut deq = vec![0f32; c.block_values()];
            for x in blocks(spec.group()) {
                c.quantize_block(&x, &mut want);
                let p = spec.rtn_params(&x);
                spec.encode(&x, p, &mut got);
                assert_eq!(got, want, "{f} block {x:?}");
                c.dequantize_block(&want, &mut deq);
                for (i, &v) in x.iter().enumerate() {
                    let q = spec.code(p, v);
                    assert_eq!(
                        spec.value(p, q).to_bits(),
                        deq[i].to_bits(),
                        "{f} value {i}"
                    );
                }
            }
        }
    }

    /// Any parameters: the bytes `encode` writes dequantize to `value` of `code`.
    #[test]
    fn encode_and_value_agree_for_other_parameters() {
        let mut rng = Rng::new(3);
        for f in covered() {
            let spec = BlockSpec::new(f).unwrap();
            let c = f.codec();
            let mut bytes = vec![0u8; c.block_bytes()];
            let mut deq = vec![0f32; c.block_values()];
            for x in blocks(spec.group()).into_iter().take(60) {
                let p = match spec.rtn_params(&x) {
                    BlockParams::Scale { d } => BlockParams::Scale {
                        d: d * (0.5 + rng.uniform() as f32),
                    },
                    BlockParams::ScaleMin { d, m } => BlockParams::ScaleMin {
                        d: d * 0.7,
                        m: m * 0.8,
                    },
                    BlockParams::ScaleZero { s, z } => BlockParams::ScaleZero {
                        s: s * 0.6,
                        z: (z + 1).min(15),
                    },
                };
                if matches!(spec.grid(), Grid::Table { .. }) && !x.iter().all(|v| v.is_finite()) {
                    continue;
                }
                let p = spec.stored(p);
                spec.encode(&x, p, &mut bytes);
                c.dequantize_block(&bytes, &mut deq);
                for (i, &v) in x.iter().enumerate() {
                    let want = spec.value(p, spec.code(p, v));
                    assert_eq!(want.to_bits(), deq[i].to_bits(), "{f} {p:?} value {i}");
                }
            }
        }
    }

    #[test]
    fn stub_formats_have_no_spec() {
        assert!(BlockSpec::new(F::MXFP4).is_none());
        assert!(BlockSpec::new(F::Q4_K).is_none());
        assert!(BlockSpec::new(F::F32).is_none());
    }
}
