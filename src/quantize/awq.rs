//! AWQ (Lin et al. 2023), activation-aware scaling: input channels that see large
//! activations get their weights scaled up before quantization, so they lose less
//! precision; the inverse scale must then be applied to the activations.
//!
//! For each `alpha = i / grid`, `i = 0..=grid`: `s_j = max(mean_n |x_nj|, 1e-4)^alpha`,
//! normalized by `sqrt(max s * min s)` (as AWQ does); `W' = W diag(s)` is quantized with
//! the format's reference quantizer (RTN) and the layer's output error is measured with the
//! compensating `1/s` folded back: `|| X (deq(W') diag(1/s))^T - X W^T ||^2`. The alpha with
//! the lowest error wins; `alpha = 0` is plain RTN (all `s = 1`), so on the calibration data
//! AWQ is never worse than RTN.
//!
//! What is stored: the quantized `W diag(s)` and the scales `s`. The model stays exact only
//! if the layer's input is divided by `s`: fold `1/s` into whatever produces the input (the
//! preceding norm's weight, or the rows of the preceding linear layer), or divide the
//! activations at run time. The search uses at most [`SEARCH_SAMPLES`] calibration samples
//! (evenly strided) to bound its cost.

use super::calib::Activations;
use super::output_sq_err;
use crate::error::Result;
use crate::format::{Format, QuantizedTensor};

/// Most calibration samples the alpha search evaluates.
pub const SEARCH_SAMPLES: usize = 256;

/// The result of the search: the quantized `W diag(s)`, `s`, and the alpha chosen.
pub struct AwqResult {
    pub tensor: QuantizedTensor,
    pub scales: Vec<f32>,
    pub alpha: f64,
}

/// Evenly strided samples of `x`, at most `max` of them.
fn subsample(x: &Activations, max: usize) -> (Vec<f32>, usize) {
    let (n, k) = (x.samples(), x.k());
    if n <= max {
        return (x.data().to_vec(), n);
    }
    let mut out = Vec::with_capacity(max * k);
    for i in 0..max {
        let s = i * n / max;
        out.extend_from_slice(&x.data()[s * k..(s + 1) * k]);
    }
    (out, max)
}

pub fn quantize(
    format: Format,
    w: &[f32],
    rows: usize,
    k: usize,
    x: &Activations,
    grid: usize,
) -> Result<AwqResult> {
    let grid = grid.max(1);
    let mean_abs = mean_abs(x.data(), k);
    let (xs, n) = subsample(x, SEARCH_SAMPLES);
    let mut best: Option<(f64, AwqResult)> = None;
    let mut ws = vec![0f32; rows * k];
    for i in 0..=grid {
        let alpha = i as f64 / grid as f64;
        let s = scales(&mean_abs, alpha);
        for (wr, sr) in w.chunks_exact(k).zip(ws.chunks_exact_mut(k)) {
            for ((o, &a), &b) in sr.iter_mut().zip(wr).zip(&s) {
                *o = a * b;
            }
        }
        let q = QuantizedTensor::quantize(format, &ws, rows, k)?;
        let eff = effective(&q.dequantize(), &s);
        let err = output_sq_err(&xs, n, w, &eff, rows, k);
        if best.as_ref().is_none_or(|(e, _)| err < *e) {
            best = Some((
                err,
                AwqResult {
                    tensor: q,
                    scales: s,
                    alpha,
                },
            ));
        }
    }
    Ok(best.expect("at least one alpha").1)
}

/// The scales of exponent `alpha` for inputs of mean magnitudes `mean_abs` (each already
/// at least 1e-4): `s_j = mean_abs_j^alpha`, normalized by `sqrt(max s * min s)`.
pub fn scales(mean_abs: &[f64], alpha: f64) -> Vec<f32> {
    let mut s: Vec<f64> = mean_abs.iter().map(|m| m.powf(alpha)).collect();
    let (mn, mx) = s
        .iter()
        .fold((f64::MAX, 0f64), |(a, b), &v| (a.min(v), b.max(v)));
    let norm = (mn * mx).sqrt();
    for v in &mut s {
        *v /= norm;
    }
    s.iter().map(|&v| v as f32).collect()
}

/// Mean `|x_j|` per column of the rows `x` (`k` wide), at least 1e-4 (AWQ's floor).
pub fn mean_abs(x: &[f32], k: usize) -> Vec<f64> {
    let n = (x.len() / k).max(1);
    let mut m = vec![0f64; k];
    for row in x.chunks_exact(k) {
        for (a, &v) in m.iter_mut().zip(row) {
            *a += v.abs() as f64;
        }
    }
    m.iter().map(|&a| (a / n as f64).max(1e-4)).collect()
}

/// The weights a stored AWQ tensor stands for: `deq diag(1/s)`.
pub fn effective(deq: &[f32], scales: &[f32]) -> Vec<f32> {
    let k = scales.len();
    let mut out = deq.to_vec();
    for r in out.chunks_exact_mut(k) {
        for (v, &s) in r.iter_mut().zip(scales) {
            *v /= s;
        }
    }
    out
}
