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
//!    at the first column of a group, every row's group parameters are chosen by the
//!    format's reference rule from the *current* (already compensated) weights of the
//!    group; then `q = Q(w_i)`, `e = (w_i - q) / U_ii`, `W[:, j] -= e U_ij` for the
//!    remaining columns `j` of the batch; after the batch, the batch's errors update all
//!    later columns at once (`W[:, i2..] -= E U[i1..i2, i2..]`).
//!
//! Rows are independent given `U`, so they are split across threads.

use super::block::{BlockParams, BlockSpec};
use super::calib::Activations;
use super::parallel_chunks;
use crate::error::{Error, Result};

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
    let k = x.k();
    let mut h = hessian(x);
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

/// GPTQ for a `rows` x `k` weight with `U` from [`prepare`]; returns the canonical bytes.
pub fn quantize(
    spec: &BlockSpec,
    w: &[f32],
    rows: usize,
    k: usize,
    u: &[f64],
    block: usize,
) -> Vec<u8> {
    let g = spec.group();
    let batch = block.max(1).div_ceil(g) * g;
    let bb = spec.format().row_bytes(k) / (k / g);
    let parts = parallel_chunks(rows, |range| {
        let nr = range.len();
        let mut wk: Vec<f64> = w[range.start * k..range.end * k]
            .iter()
            .map(|&v| v as f64)
            .collect();
        let mut codes = vec![0i32; nr * k];
        let mut params = vec![BlockParams::Scale { d: 0.0 }; nr * (k / g)];
        let mut err = vec![0f64; nr * batch];
        let mut gbuf = vec![0f32; g];
        for i1 in (0..k).step_by(batch) {
            let i2 = (i1 + batch).min(k);
            for i in i1..i2 {
                let urow = &u[i * k..(i + 1) * k];
                let uii = urow[i];
                for r in 0..nr {
                    let wr = &mut wk[r * k..(r + 1) * k];
                    if i % g == 0 {
                        for (b, &v) in gbuf.iter_mut().zip(&wr[i..i + g]) {
                            *b = v as f32;
                        }
                        params[r * (k / g) + i / g] = spec.stored(spec.rtn_params(&gbuf));
                    }
                    let p = spec.prepare(params[r * (k / g) + i / g]);
                    let q = p.code(wr[i] as f32);
                    codes[r * k + i] = q;
                    let e = (wr[i] - p.value(q) as f64) / uii;
                    err[r * batch + (i - i1)] = e;
                    for (wj, &uj) in wr[i + 1..i2].iter_mut().zip(&urow[i + 1..i2]) {
                        *wj -= e * uj;
                    }
                }
            }
            if i2 < k {
                for r in 0..nr {
                    let wr = &mut wk[r * k + i2..(r + 1) * k];
                    for t in 0..i2 - i1 {
                        let e = err[r * batch + t];
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
        }
        let mut out = vec![0u8; nr * (k / g) * bb];
        for (bi, ob) in out.chunks_exact_mut(bb).enumerate() {
            spec.encode_codes(&codes[bi * g..(bi + 1) * g], params[bi], ob);
        }
        (range, out)
    });
    parts.into_iter().flat_map(|(_, b)| b).collect()
}
