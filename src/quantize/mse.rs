//! MSE (clipping / scale) search per block.
//!
//! For every block, candidates around the reference (RTN) parameters are tried and the one
//! with the lowest sum of squared error of the *stored* block is kept; the RTN parameters
//! themselves are always a candidate, so no block gets worse than RTN.
//!
//! - `w = d q` grids (Q4_0, Q8_0, int sym): scales `d0 * f` with `d0` mapping the value of
//!   largest magnitude to either end of the code range (`qmin`, or `qmax`; only the positive
//!   one where the scale must be positive), `f` over ggml `make_qx_quants`' candidates
//!   `nmax / (nmax + 0.1 i)`, `i = -9..=9`, and a clipping sweep `0.30 ..= 1.10` in steps of
//!   0.04. Each candidate's codes also give the least-squares scale `sum(x q) / sum(q^2)`
//!   (ggml's closed form), which is tried too; the best is then refined by repeating
//!   codes -> least-squares scale until it stops improving.
//! - `w = d q + m` (Q4_1) and `w = s (q - z)` (int asym): the range `[lo, hi]` is clipped at
//!   both ends independently (0 to 40% of the range each in steps of 4%, 11 x 11 candidates); each
//!   candidate's codes give the least-squares `(d, m)` (resp. `s` for the candidate's `z`).
//!
//! - `w = d levels[q]` (IQ4_NL): as `w = d q`, the value of largest magnitude mapped to
//!   either end of the table, with least-squares refits over the table values.
//!
//! Formats without a [`BlockSpec`] (K-quants and the other non-linear formats) get a
//! generic search through their own quantizer: each block is clipped to `f * [lo, hi]` for
//! `f` in `0.50 ..= 1.00` and quantized with the format's reference quantizer; the block
//! with the lowest error against the *unclipped* weights is kept (f = 1 is RTN).
//!
//! Every search also takes per-weight error weights (`sum w_j (x_j - x'_j)^2`): the
//! importance-matrix method ([`importance_weights`]) passes the layer's mean squared input
//! per column, so the scale fits the weights whose inputs are large.

use super::block::{BlockParams, BlockSpec, Grid};
use crate::format::Codec;

/// Scale factors tried around a base scale whose code magnitude is `nmax`.
fn scale_factors(nmax: f32) -> Vec<f32> {
    let mut f: Vec<f32> = (-9..=9).map(|i| nmax / (nmax + 0.1 * i as f32)).collect();
    f.extend((15..=55).step_by(2).map(|i| i as f32 * 0.02));
    f
}

/// Keeps the candidate with the lowest (weighted) error.
struct Best<'a> {
    spec: &'a BlockSpec,
    x: &'a [f32],
    w: Option<&'a [f32]>,
    err: f64,
    p: BlockParams,
}

impl Best<'_> {
    /// Try `p` (rounded to what the block stores); true if it became the best.
    fn consider(&mut self, p: BlockParams) -> bool {
        let p = self.spec.stored(p);
        let e = self.spec.sse_weighted(p, self.x, self.w);
        // NaN never wins.
        if e < self.err {
            self.err = e;
            self.p = p;
            true
        } else {
            false
        }
    }

    /// The least-squares parameters for the codes `p` gives (same zero point for
    /// `ScaleZero`), if they exist.
    fn refit(&self, p: BlockParams) -> Option<BlockParams> {
        let spec = self.spec;
        let pp = spec.prepare(p);
        let table = match spec.grid() {
            Grid::Table { levels } => Some(levels),
            _ => None,
        };
        // (value, code or table level, error weight)
        let codes = self.x.iter().enumerate().map(|(j, &v)| {
            let q = pp.code(v);
            let q = table.map_or(q as f64, |t| t[q as usize] as f64);
            (v as f64, q, self.w.map_or(1.0, |w| w[j] as f64))
        });
        match p {
            BlockParams::Scale { .. } => {
                let (mut xq, mut qq) = (0.0, 0.0);
                for (v, q, w) in codes {
                    xq += w * v * q;
                    qq += w * q * q;
                }
                let d = (qq > 0.0).then(|| xq / qq)?;
                let signed = matches!(
                    spec.grid(),
                    Grid::Scale {
                        signed_scale: true,
                        ..
                    } | Grid::Table { .. }
                );
                (signed || d > 0.0).then_some(BlockParams::Scale { d: d as f32 })
            }
            BlockParams::ScaleMin { .. } => {
                let (mut n, mut sq, mut sqq, mut sx, mut sxq) = (0.0, 0.0, 0.0, 0.0, 0.0);
                for (v, q, w) in codes {
                    n += w;
                    sq += w * q;
                    sqq += w * q * q;
                    sx += w * v;
                    sxq += w * v * q;
                }
                let det = n * sqq - sq * sq;
                if det <= 0.0 {
                    return None;
                }
                let d = (n * sxq - sq * sx) / det;
                let m = (sx - d * sq) / n;
                (d > 0.0).then_some(BlockParams::ScaleMin {
                    d: d as f32,
                    m: m as f32,
                })
            }
            BlockParams::ScaleZero { z, .. } => {
                let (mut xq, mut qq) = (0.0, 0.0);
                for (v, q, w) in codes {
                    let q = q - z as f64;
                    xq += w * v * q;
                    qq += w * q * q;
                }
                let s = (qq > 0.0).then(|| xq / qq)?;
                (s > 0.0).then_some(BlockParams::ScaleZero { s: s as f32, z })
            }
        }
    }

    fn consider_with_refit(&mut self, p: BlockParams) {
        self.consider(p);
        if let Some(r) = self.refit(self.spec.stored(p)) {
            self.consider(r);
        }
    }

    /// Repeat codes -> least-squares parameters from the best while it improves.
    fn polish(&mut self) {
        for _ in 0..8 {
            match self.refit(self.p) {
                Some(r) if self.consider(r) => {}
                _ => break,
            }
        }
    }
}

/// The parameters with the lowest squared error for block `x` (never worse than RTN).
pub fn search(spec: &BlockSpec, x: &[f32]) -> BlockParams {
    search_weighted(spec, x, None)
}

/// [`search`] with error weights `w` (one per value of the block, non-negative): the
/// parameters with the lowest `sum w_j (x_j - x'_j)^2`, never worse than RTN by it.
pub fn search_weighted(spec: &BlockSpec, x: &[f32], w: Option<&[f32]>) -> BlockParams {
    let x = &x[..spec.group()];
    let w = w.map(|w| &w[..spec.group()]);
    let rtn = spec.rtn_params(x);
    let mut best = Best {
        spec,
        x,
        w,
        err: spec.sse_weighted(rtn, x, w),
        p: rtn,
    };
    if best.err == 0.0 || x.iter().any(|v| !v.is_finite()) {
        return rtn;
    }
    match spec.grid() {
        Grid::Table { levels } => {
            let (mut amax, mut mx) = (0.0f32, 0.0f32);
            for &v in x {
                if amax < v.abs() {
                    amax = v.abs();
                    mx = v;
                }
            }
            for end in [levels[0], levels[15]] {
                let base = mx / end as f32;
                for f in scale_factors(end.unsigned_abs() as f32) {
                    best.consider_with_refit(BlockParams::Scale { d: base * f });
                }
            }
        }
        Grid::Scale {
            qmin,
            qmax,
            signed_scale,
        } => {
            let (mut amax, mut mx) = (0.0f32, 0.0f32);
            for &v in x {
                if amax < v.abs() {
                    amax = v.abs();
                    mx = v;
                }
            }
            for n in [qmin, qmax] {
                let base = mx / n as f32;
                if !(signed_scale || base > 0.0) {
                    continue;
                }
                for f in scale_factors(n.unsigned_abs() as f32) {
                    best.consider_with_refit(BlockParams::Scale { d: base * f });
                }
            }
        }
        Grid::ScaleMin { qmax } | Grid::ScaleZero { qmax } => {
            let zero_in_range = matches!(spec.grid(), Grid::ScaleZero { .. });
            let (mut lo, mut hi) = if zero_in_range {
                (0.0f32, 0.0f32)
            } else {
                (f32::MAX, -f32::MAX)
            };
            for &v in x {
                lo = lo.min(v);
                hi = hi.max(v);
            }
            let r = hi - lo;
            let qm = qmax as f32;
            for a in 0..=10 {
                for b in 0..=10 {
                    let lo_c = lo + 0.04 * a as f32 * r;
                    let hi_c = hi - 0.04 * b as f32 * r;
                    if hi_c <= lo_c {
                        continue;
                    }
                    let d = (hi_c - lo_c) / qm;
                    let p = if zero_in_range {
                        let s = spec.stored(BlockParams::ScaleZero { s: d, z: 0 });
                        let BlockParams::ScaleZero { s, .. } = s else {
                            unreachable!()
                        };
                        if s == 0.0 {
                            continue;
                        }
                        let z = (-lo_c / s).round().clamp(0.0, qm) as i32;
                        BlockParams::ScaleZero { s, z }
                    } else {
                        BlockParams::ScaleMin { d, m: lo_c }
                    };
                    best.consider_with_refit(p);
                }
            }
            // Neighbouring zero points of the best.
            if let BlockParams::ScaleZero { s, z } = best.p {
                for dz in [-1, 1] {
                    let z = (z + dz).clamp(0, qmax);
                    best.consider_with_refit(BlockParams::ScaleZero { s, z });
                }
            }
        }
    }
    best.polish();
    best.p
}

/// The generic search for formats without a [`BlockSpec`]: clip the block to `f * [lo, hi]`
/// and quantize with the format's own quantizer; keep the bytes with the lowest error
/// (weighted by `w` where given) against the unclipped `x` (`f = 1` is exactly RTN, so
/// never worse).
pub fn clip_search_codec(codec: &dyn Codec, x: &[f32], w: Option<&[f32]>, out: &mut [u8]) {
    let n = codec.block_values();
    let x = &x[..n];
    codec.quantize_block(x, out);
    let mut deq = vec![0f32; n];
    let sse = |bytes: &[u8], deq: &mut [f32]| -> f64 {
        codec.dequantize_block(bytes, deq);
        let e: f64 = deq
            .iter()
            .zip(x)
            .enumerate()
            .map(|(j, (&a, &b))| w.map_or(1.0, |w| w[j] as f64) * (a as f64 - b as f64).powi(2))
            .sum();
        if e.is_nan() {
            f64::INFINITY
        } else {
            e
        }
    };
    let mut best = sse(out, &mut deq);
    if best == 0.0 || x.iter().any(|v| !v.is_finite()) {
        return;
    }
    let (lo, hi) = x
        .iter()
        .fold((f32::MAX, -f32::MAX), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let mut clipped = vec![0f32; n];
    let mut cand = vec![0u8; out.len()];
    for i in 50..100 {
        let f = i as f32 * 0.01;
        for (c, &v) in clipped.iter_mut().zip(x) {
            *c = v.clamp(lo * f, hi * f);
        }
        codec.quantize_block(&clipped, &mut cand);
        let e = sse(&cand, &mut deq);
        if e < best {
            best = e;
            out.copy_from_slice(&cand);
        }
    }
}

/// Error weights of llama.cpp's importance-matrix quantizers for a row `x` whose input
/// columns have mean squared activations `importance`: `importance_j * sqrt(sigma2 +
/// x_j^2)`, `sigma2` the row's mean squared weight (the square root keeps some weight on
/// the relative error of large weights). A column whose input was always zero gets a tiny
/// weight rather than none, so its weights still land on the grid.
pub fn importance_weights(importance: &[f32], x: &[f32]) -> Vec<f32> {
    let sigma2 = x.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / x.len().max(1) as f64;
    let floor = importance.iter().fold(0f32, |a, &b| a.max(b)) * 1e-6;
    importance
        .iter()
        .zip(x)
        .map(|(&q, &v)| q.max(floor).max(f32::MIN_POSITIVE) * ((sigma2 as f32) + v * v).sqrt())
        .collect()
}
