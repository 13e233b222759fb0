//! Scale searches shared by the K-quant quantizers, as ggml's reference quantizers do them.

/// ggml's `nearest_int`: round to nearest, ties to even, through the f32 mantissa of
/// `v + 1.5 * 2^23` (exact for |v| < 2^22; beyond that, the same wrapped bits as ggml).
pub(crate) fn nearest_int(v: f32) -> i32 {
    let bits = (v + 12_582_912.0f32).to_bits();
    (bits & 0x007f_ffff) as i32 - 0x0040_0000
}

/// How [`make_qkx2_quants`] weighs a candidate's error.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum SearchError {
    /// Weighted squared error (Q4_K, Q5_K).
    Squared,
    /// Weighted absolute error (ggml's `use_mad`, Q2_K).
    Absolute,
}

/// ggml's `make_qkx2_quants`: codes `l[i]` in `0..=nmax` with `x[i] ~ scale * l[i] - min`,
/// `min >= 0`, searching `nstep + 1` scales `(nmax + rmin + 0.1 is) / (max - min)` after the
/// plain min/max one, each refined by weighted least squares. Returns (scale, min).
pub(crate) fn make_qkx2_quants(
    x: &[f32],
    weights: &[f32],
    nmax: i32,
    rmin: f32,
    nstep: i32,
    l: &mut [u8],
    error: SearchError,
) -> (f32, f32) {
    let cost = |diff: f32| match error {
        SearchError::Squared => diff * diff,
        SearchError::Absolute => diff.abs(),
    };
    let rdelta = 0.1f32;
    let n = x.len();
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l[..n].fill(0);
        return (0.0, -min);
    }
    let quant = |iscale: f32, min: f32, v: f32| nearest_int(iscale * (v - min)).clamp(0, nmax);
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0.0f32;
    for i in 0..n {
        let q = quant(iscale, min, x[i]);
        l[i] = q as u8;
        let diff = scale * q as f32 + min - x[i];
        best_error += weights[i] * cost(diff);
    }
    let mut laux = [0u8; 32];
    let laux = &mut laux[..n];
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..n {
            let q = quant(iscale, min, x[i]);
            laux[i] = q as u8;
            let (w, lf) = (weights[i], q as f32);
            sum_l += w * lf;
            sum_l2 += w * lf * lf;
            sum_xl += w * lf * x[i];
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0.0f32;
            for i in 0..n {
                let diff = this_scale * laux[i] as f32 + this_min - x[i];
                cur_error += weights[i] * cost(diff);
            }
            if cur_error < best_error {
                l[..n].copy_from_slice(laux);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}
