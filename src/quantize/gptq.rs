//! GPTQ (Frantar et al. 2022): quantize a weight column by column, pushing each column's
//! error onto the columns not yet quantized, weighted by the inverse Hessian of the
//! layer's squared output error on calibration inputs.
//!
//! With `X` the `n` x `k` calibration inputs and `W` the `rows` x `k` weight:
//! 1. `H = 2/n X^T X` (f64); inputs that are zero in every sample get `H_ii = 1` (their
//!    error cannot reach the output, and it does not propagate); `H += lambda I` with
//!    `lambda = damp * mean(diag H)`.
//! 2. `U` = the upper Cholesky factor of `H^-1` (`H^-1 = U^T U`). If a factorization
//!    fails, the damping is multiplied by 10 and it starts again (at most 4 times).
//! 3. Columns in lazy batches of `block` (rounded up to whole groups): for column `i`,
//!    at the first column of a group, every row's group parameters are chosen from the
//!    *current* (already compensated) weights of the group, by the format's reference rule
//!    or, where the inputs' importance is known, by the importance-weighted MSE search
//!    ([`SearchedSpec`]); then `q = Q(w_i)`, `e = (w_i - q) / U_ii`, `W[:, j] -= e U_ij` for the
//!    remaining columns `j` of the batch; after the batch, the batch's errors update all
//!    later columns at once (`W[:, i2..] -= E U[i1..i2, i2..]`).
//!
//! With act-order (`order`), columns are visited by decreasing `H_ii` instead (the inputs
//! with the most energy first, while the most other columns are left to absorb their
//! error). The stored layout cannot hold a permutation, so groups stay the format's
//! contiguous blocks, and their parameters must then be fixed before the pass: *static
//! groups*, every block's parameters chosen up front from the original weights (they can
//! also be used in natural order).
//!
//! The formats ([`Grid`]): those of one scale (and min) per block ([`BlockSpec`]), and the
//! K-quants Q4_K, Q5_K, Q6_K ([`KQuantGrid`]), whose reference quantizer fixes each
//! super-block's sub-block grids.
//!
//! Rows are independent given `U`, so they are split across threads.

use super::block::{BlockParams, BlockSpec};
use super::calib::Activations;
use super::parallel_chunks;
use crate::error::{Error, Result};
use crate::format::{scale_min_k4, BlockQ4_K, BlockQ5_K, BlockQ6_K, Format, QK_K};

/// `2/n X^T X` (full symmetric `k` x `k`, row-major, f64).
pub fn hessian(x: &Activations) -> Vec<f64> {
    let (n, k) = (x.samples(), x.k());
    let data = x.data();
    // Each thread accumulates the rows i of the upper triangle it owns.
    let parts = parallel_chunks(k, |range| {
        let mut h = vec![0f64; range.len() * k];
        let mut xs = vec![0f64; k];
        for s in 0..n {
            for (d, &v) in xs.iter_mut().zip(&data[s * k..(s + 1) * k]) {
                *d = v as f64;
            }
            for (ri, i) in range.clone().enumerate() {
                let xi = xs[i];
                if xi == 0.0 {
                    continue;
                }
                let row = &mut h[ri * k..(ri + 1) * k];
                for (hj, &xj) in row[i..].iter_mut().zip(&xs[i..]) {
                    *hj += xi * xj;
                }
            }
        }
        (range, h)
    });
    let mut h = vec![0f64; k * k];
    for (range, part) in parts {
        h[range.start * k..range.end * k].copy_from_slice(&part);
    }
    let scale = 2.0 / n as f64;
    for i in 0..k {
        for j in i..k {
            let v = h[i * k + j] * scale;
            h[i * k + j] = v;
            h[j * k + i] = v;
        }
    }
    h
}

/// In-place lower Cholesky factor of the symmetric positive definite `a` (`n` x `n`); the
/// upper triangle is zeroed. False if `a` is not (numerically) positive definite.
fn cholesky(a: &mut [f64], n: usize) -> bool {
    for j in 0..n {
        let rj: Vec<f64> = a[j * n..j * n + j].to_vec();
        let d = a[j * n + j] - rj.iter().map(|v| v * v).sum::<f64>();
        if d.is_nan() || d <= 0.0 || d.is_infinite() {
            return false;
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let ri = &mut a[i * n..(i + 1) * n];
            let dot: f64 = ri[..j].iter().zip(&rj).map(|(a, b)| a * b).sum();
            ri[j] = (ri[j] - dot) / d;
        }
    }
    for i in 0..n {
        for j in i + 1..n {
            a[i * n + j] = 0.0;
        }
    }
    true
}

/// The upper Cholesky factor `U` of `H^-1` (`H^-1 = U^T U`), or `None` if `H` is not
/// positive definite.
fn inverse_cholesky_upper(h: &[f64], k: usize) -> Option<Vec<f64>> {
    let mut l = h.to_vec();
    if !cholesky(&mut l, k) {
        return None;
    }
    // Linv (lower) = L^-1, column by column, stored transposed (row j = column j).
    let mut linv_t = vec![0f64; k * k];
    for j in 0..k {
        let col = &mut linv_t[j * k..(j + 1) * k];
        col[j] = 1.0 / l[j * k + j];
        for i in j + 1..k {
            let li = &l[i * k..(i + 1) * k];
            let s: f64 = li[j..i].iter().zip(&col[j..i]).map(|(a, b)| a * b).sum();
            col[i] = -s / li[i];
        }
    }
    // H^-1 = Linv^T Linv: (i, j) = sum_p Linv[p][i] Linv[p][j] = dot of columns i and j.
    let mut hinv = vec![0f64; k * k];
    for i in 0..k {
        let ci = &linv_t[i * k..(i + 1) * k];
        for j in 0..=i {
            let cj = &linv_t[j * k..(j + 1) * k];
            let s: f64 = ci[i..].iter().zip(&cj[i..]).map(|(a, b)| a * b).sum();
            hinv[i * k + j] = s;
            hinv[j * k + i] = s;
        }
    }
    if !cholesky(&mut hinv, k) {
        return None;
    }
    // U = L2^T.
    let mut u = vec![0f64; k * k];
    for i in 0..k {
        for j in 0..=i {
            u[j * k + i] = hinv[i * k + j];
        }
    }
    Some(u)
}

/// The damped Hessian's inverse Cholesky factor for calibration `x`.
pub fn prepare(x: &Activations, damp: f64) -> Result<Vec<f64>> {
    prepare_hessian(hessian(x), x.k(), damp, None)
}

/// The column order of act-order: by decreasing `H_ii` (ties in natural order).
pub fn act_order(h: &[f64], k: usize) -> Vec<usize> {
    let mut perm: Vec<usize> = (0..k).collect();
    perm.sort_by(|&a, &b| h[b * k + b].total_cmp(&h[a * k + a]).then(a.cmp(&b)));
    perm
}

/// The damped inverse Cholesky factor `U` for the Hessian `h` (`2/n X^T X`, `k` x `k`,
/// consumed), with rows and columns taken in `order` where given (act-order): `U` is then
/// that of the permuted Hessian.
pub fn prepare_hessian(
    mut h: Vec<f64>,
    k: usize,
    damp: f64,
    order: Option<&[usize]>,
) -> Result<Vec<f64>> {
    assert_eq!(h.len(), k * k);
    if let Some(p) = order {
        assert_eq!(p.len(), k);
        let mut hp = vec![0f64; k * k];
        for (i, &pi) in p.iter().enumerate() {
            for (j, &pj) in p.iter().enumerate() {
                hp[i * k + j] = h[pi * k + pj];
            }
        }
        h = hp;
    }
    for i in 0..k {
        if h[i * k + i] == 0.0 {
            h[i * k + i] = 1.0;
        }
    }
    let mean_diag = (0..k).map(|i| h[i * k + i]).sum::<f64>() / k as f64;
    let mut damp = damp;
    for _ in 0..4 {
        let mut hd = h.clone();
        for i in 0..k {
            hd[i * k + i] += damp * mean_diag;
        }
        if let Some(u) = inverse_cholesky_upper(&hd, k) {
            return Ok(u);
        }
        damp = if damp > 0.0 { damp * 10.0 } else { 1e-4 };
    }
    Err(Error::Calibration(format!(
        "the calibration Hessian (K = {k}) is not positive definite even with damping {damp}"
    )))
}

/// A format's blocks as GPTQ walks them: parameters chosen per block, then a code per
/// weight on the grid they define.
pub trait Grid: Sync {
    type Params: Clone + Send + Sync;
    /// Weights per block.
    fn group(&self) -> usize;
    fn format(&self) -> Format;
    /// The parameters of block `x`, whose first weight is in column `col` of its row.
    fn params(&self, x: &[f32], col: usize) -> Self::Params;
    /// The code of weight `j` of the block (value `v`) and the value that code stands for.
    fn quant(&self, p: &Self::Params, j: usize, v: f32) -> (i32, f32);
    /// The block's canonical bytes from its codes.
    fn encode(&self, codes: &[i32], p: &Self::Params, out: &mut [u8]);
}

impl Grid for BlockSpec {
    type Params = BlockParams;
    fn group(&self) -> usize {
        BlockSpec::group(self)
    }
    fn format(&self) -> Format {
        BlockSpec::format(self)
    }
    fn params(&self, x: &[f32], _col: usize) -> BlockParams {
        self.stored(self.rtn_params(x))
    }
    fn quant(&self, p: &BlockParams, _j: usize, v: f32) -> (i32, f32) {
        let pp = self.prepare(*p);
        let q = pp.code(v);
        (q, pp.value(q))
    }
    fn encode(&self, codes: &[i32], p: &BlockParams, out: &mut [u8]) {
        self.encode_codes(codes, *p, out)
    }
}

/// A [`BlockSpec`] whose block parameters come from the importance-weighted MSE search
/// ([`super::mse::search_weighted`] with [`super::mse::importance_weights`]) instead of the
/// reference rule: GPTQ then walks the grid that fits the weights of large inputs best.
#[derive(Clone, Copy, Debug)]
pub struct SearchedSpec<'a> {
    pub spec: BlockSpec,
    /// Mean squared input per column of the row.
    pub importance: &'a [f32],
}

impl Grid for SearchedSpec<'_> {
    type Params = BlockParams;
    fn group(&self) -> usize {
        self.spec.group()
    }
    fn format(&self) -> Format {
        self.spec.format()
    }
    fn params(&self, x: &[f32], col: usize) -> BlockParams {
        let g = self.spec.group();
        let w = super::mse::importance_weights(&self.importance[col..col + g], &x[..g]);
        self.spec
            .stored(super::mse::search_weighted(&self.spec, x, Some(&w)))
    }
    fn quant(&self, p: &BlockParams, j: usize, v: f32) -> (i32, f32) {
        self.spec.quant(p, j, v)
    }
    fn encode(&self, codes: &[i32], p: &BlockParams, out: &mut [u8]) {
        self.spec.encode_codes(codes, *p, out)
    }
}

/// Q4_K, Q5_K and Q6_K super-blocks for GPTQ: the reference quantizer chooses a super-block's
/// scales (and mins), which fix every sub-block's grid `w = a q - b`; GPTQ then chooses
/// the codes, nearest on that grid.
#[derive(Clone, Copy, Debug)]
pub struct KQuantGrid {
    format: Format,
}

/// A super-block's fixed grids: the reference block (its scales) and per sub-block `a`, `b`.
#[derive(Clone, Debug)]
pub struct KParams {
    block: Vec<u8>,
    a: [f32; 16],
    b: [f32; 16],
}

impl KQuantGrid {
    /// The grid of a K-quant GPTQ can walk (Q4_K, Q5_K, Q6_K), else `None`.
    pub fn new(format: Format) -> Option<KQuantGrid> {
        matches!(format, Format::Q4_K | Format::Q5_K | Format::Q6_K)
            .then_some(KQuantGrid { format })
    }

    /// Weights per sub-block and the largest code.
    fn sub(&self) -> (usize, i32) {
        match self.format {
            Format::Q4_K => (32, 15),
            Format::Q5_K => (32, 31),
            _ => (16, 63),
        }
    }
}

impl Grid for KQuantGrid {
    type Params = KParams;
    fn group(&self) -> usize {
        QK_K
    }
    fn format(&self) -> Format {
        self.format
    }
    fn params(&self, x: &[f32], _col: usize) -> KParams {
        let c = self.format.codec();
        let mut block = vec![0u8; c.block_bytes()];
        c.quantize_block(&x[..QK_K], &mut block);
        let (mut a, mut b) = ([0f32; 16], [0f32; 16]);
        match self.format {
            Format::Q4_K | Format::Q5_K => {
                let (d, dmin, scales) = if self.format == Format::Q4_K {
                    let k = BlockQ4_K::unpack(&block);
                    (k.d, k.dmin, k.scales)
                } else {
                    let k = BlockQ5_K::unpack(&block);
                    (k.d, k.dmin, k.scales)
                };
                for j in 0..8 {
                    let (sc, m) = scale_min_k4(&scales, j);
                    a[j] = d.to_f32() * sc as f32;
                    b[j] = dmin.to_f32() * m as f32;
                }
            }
            _ => {
                let k = BlockQ6_K::unpack(&block);
                for j in 0..16 {
                    a[j] = k.d.to_f32() * k.scales[j] as f32;
                    b[j] = 32.0 * a[j];
                }
            }
        }
        KParams { block, a, b }
    }
    fn quant(&self, p: &KParams, j: usize, v: f32) -> (i32, f32) {
        let (len, qmax) = self.sub();
        let s = j / len;
        let (a, b) = (p.a[s], p.b[s]);
        let q = if a != 0.0 {
            ((v + b) / a).round().clamp(0.0, qmax as f32) as i32
        } else {
            0
        };
        (q, a * q as f32 - b)
    }
    fn encode(&self, codes: &[i32], p: &KParams, out: &mut [u8]) {
        let codes: Vec<u8> = codes.iter().map(|&q| q as u8).collect();
        match self.format {
            Format::Q4_K => {
                let mut k = BlockQ4_K::unpack(&p.block);
                k.qs = BlockQ4_K::pack_codes(&codes);
                k.pack(out);
            }
            Format::Q5_K => {
                let mut k = BlockQ5_K::unpack(&p.block);
                (k.qh, k.qs) = BlockQ5_K::pack_codes(&codes);
                k.pack(out);
            }
            _ => {
                let k = BlockQ6_K::unpack(&p.block);
                BlockQ6_K::from_codes(&codes, k.scales, k.d).pack(out);
            }
        }
    }
}

/// How GPTQ visits columns and where block parameters come from.
#[derive(Clone, Copy, Debug)]
pub struct Order<'a, P> {
    /// Column order (act-order); `None` is natural order.
    pub perm: Option<&'a [usize]>,
    /// Every block's parameters, `rows * k / group` in row-major block order, fixed before
    /// the pass (static groups). Required with `perm`; `None` chooses each block's by the
    /// format's reference rule from the compensated weights when the pass reaches it.
    pub static_params: Option<&'a [P]>,
}

/// Every block's parameters from the weights as they are (rows of `k`): the static groups
/// of [`Order`].
pub fn static_params<G: Grid>(grid: &G, w: &[f32], k: usize) -> Vec<G::Params> {
    let g = grid.group();
    let rows = w.len() / k;
    let parts = parallel_chunks(rows, |range| {
        let mut v = Vec::with_capacity(range.len() * (k / g));
        for r in range {
            let row = &w[r * k..(r + 1) * k];
            v.extend((0..k / g).map(|b| grid.params(&row[b * g..(b + 1) * g], b * g)));
        }
        v
    });
    parts.concat()
}

/// GPTQ's lazy update: the errors `err` (`batch` per row, of the columns `cols` just
/// walked) applied to every later column of the rows `wk` (`k` wide) through `U`'s rows.
/// Shared by GPTQ and the pruning walks of [`super::prune`].
pub(crate) fn propagate_batch(
    wk: &mut [f64],
    err: &[f64],
    u: &[f64],
    (k, batch): (usize, usize),
    cols: std::ops::Range<usize>,
) {
    let (i1, i2) = (cols.start, cols.end);
    if i2 >= k {
        return;
    }
    for (wr, er) in wk.chunks_exact_mut(k).zip(err.chunks_exact(batch)) {
        let wr = &mut wr[i2..];
        for t in 0..i2 - i1 {
            let e = er[t];
            if e == 0.0 {
                continue;
            }
            let urow = &u[(i1 + t) * k + i2..(i1 + t + 1) * k];
            for (wj, &uj) in wr.iter_mut().zip(urow) {
                *wj -= e * uj;
            }
        }
    }
}

/// GPTQ for a `rows` x `k` weight with `U` from [`prepare`] (or [`prepare_hessian`] with the
/// same order); returns the canonical bytes.
pub fn quantize<G: Grid>(
    grid: &G,
    w: &[f32],
    rows: usize,
    k: usize,
    u: &[f64],
    block: usize,
    order: Order<G::Params>,
) -> Vec<u8> {
    let g = grid.group();
    let nb = k / g;
    assert!(
        order.perm.is_none() || order.static_params.is_some(),
        "act-order needs static groups"
    );
    if let Some(p) = order.static_params {
        assert_eq!(p.len(), rows * nb);
    }
    // Dynamic groups start at whole groups of the batch; static ones can batch anywhere.
    let batch = block.max(1).div_ceil(g) * g;
    let bb = grid.format().row_bytes(k) / nb;
    let col = |i: usize| order.perm.map_or(i, |p| p[i]);
    let parts = parallel_chunks(rows, |range| {
        let nr = range.len();
        let mut wk: Vec<f64> = Vec::with_capacity(nr * k);
        for r in range.clone() {
            let row = &w[r * k..(r + 1) * k];
            wk.extend((0..k).map(|i| row[col(i)] as f64));
        }
        let mut codes = vec![0i32; nr * k];
        let mut params: Vec<Option<G::Params>> = match order.static_params {
            Some(p) => p[range.start * nb..range.end * nb]
                .iter()
                .cloned()
                .map(Some)
                .collect(),
            None => vec![None; nr * nb],
        };
        let mut err = vec![0f64; nr * batch];
        let mut gbuf = vec![0f32; g];
        for i1 in (0..k).step_by(batch) {
            let i2 = (i1 + batch).min(k);
            for i in i1..i2 {
                let urow = &u[i * k..(i + 1) * k];
                let uii = urow[i];
                let c = col(i);
                for r in 0..nr {
                    let wr = &mut wk[r * k..(r + 1) * k];
                    if order.static_params.is_none() && i % g == 0 {
                        for (b, &v) in gbuf.iter_mut().zip(&wr[i..i + g]) {
                            *b = v as f32;
                        }
                        params[r * nb + i / g] = Some(grid.params(&gbuf, i));
                    }
                    let p = params[r * nb + c / g]
                        .as_ref()
                        .expect("chosen at the block's start");
                    let (q, value) = grid.quant(p, c % g, wr[i] as f32);
                    codes[r * k + c] = q;
                    let e = (wr[i] - value as f64) / uii;
                    err[r * batch + (i - i1)] = e;
                    for (wj, &uj) in wr[i + 1..i2].iter_mut().zip(&urow[i + 1..i2]) {
                        *wj -= e * uj;
                    }
                }
            }
            propagate_batch(&mut wk, &err, u, (k, batch), i1..i2);
        }
        let mut out = vec![0u8; nr * nb * bb];
        for (bi, ob) in out.chunks_exact_mut(bb).enumerate() {
            let p = params[bi].as_ref().expect("every block was reached");
            grid.encode(&codes[bi * g..(bi + 1) * g], p, ob);
        }
        (range, out)
    });
    parts.into_iter().flat_map(|(_, b)| b).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// The codes a K-quant grid chooses, written by `encode`, dequantize to the values
    /// `quant` reported (the compensation GPTQ does relies on it), with the reference
    /// block's scales kept.
    #[test]
    fn k_quant_grids_encode_what_they_quantize() {
        let mut rng = Rng::new(4);
        for f in [Format::Q4_K, Format::Q5_K, Format::Q6_K] {
            let grid = KQuantGrid::new(f).unwrap();
            let c = f.codec();
            for trial in 0..20 {
                let x: Vec<f32> = rng
                    .normal_vec(QK_K)
                    .iter()
                    .map(|v| v * [1.0, 1e-3, 30.0][trial % 3])
                    .collect();
                let p = grid.params(&x, 0);
                // Shifted values, so that codes differ from the reference's.
                let (codes, values): (Vec<i32>, Vec<f32>) = x
                    .iter()
                    .enumerate()
                    .map(|(j, &v)| grid.quant(&p, j, v * 0.9 + 0.01))
                    .unzip();
                let mut bytes = vec![0u8; c.block_bytes()];
                grid.encode(&codes, &p, &mut bytes);
                let mut deq = vec![0f32; QK_K];
                c.dequantize_block(&bytes, &mut deq);
                for (j, (&a, &b)) in deq.iter().zip(&values).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-6 * b.abs().max(1e-6),
                        "{f} trial {trial} value {j}: {a} vs {b}"
                    );
                }
                // Scales untouched: the reference's codes give the reference's bytes.
                let mut want = vec![0u8; c.block_bytes()];
                c.quantize_block(&x, &mut want);
                let split = match f {
                    Format::Q6_K => 192..210,
                    _ => 0..16,
                };
                assert_eq!(bytes[split.clone()], want[split], "{f}");
            }
        }
        assert!(KQuantGrid::new(Format::Q2_K).is_none());
    }
}
