//! CPU reference: matmul over dequantized weights with f64 accumulation, and error metrics.

/// `y[c][r] = sum_i x[c][i] * w[r][i]`, accumulated in f64.
/// `w` is `rows` x `k` (row-major), `x` is `n` x `k`; the result is `n` x `rows`.
pub fn matmul_f64(w: &[f32], rows: usize, k: usize, x: &[f32], n: usize) -> Vec<f64> {
    assert_eq!(w.len(), rows * k, "weights must be rows x k");
    assert_eq!(x.len(), n * k, "activations must be n x k");
    let mut y = vec![0f64; n * rows];
    for c in 0..n {
        let xr = &x[c * k..(c + 1) * k];
        for r in 0..rows {
            let wr = &w[r * k..(r + 1) * k];
            y[c * rows + r] = wr.iter().zip(xr).map(|(&a, &b)| a as f64 * b as f64).sum();
        }
    }
    y
}

/// Normalized mean squared error `sum (got - want)^2 / sum want^2`.
/// NaN or infinity anywhere in `got` gives `f64::INFINITY`, so no check can pass on it.
pub fn nmse(want: &[f64], got: &[f32]) -> f64 {
    assert_eq!(want.len(), got.len());
    if got.iter().any(|v| !v.is_finite()) {
        return f64::INFINITY;
    }
    let num: f64 = want
        .iter()
        .zip(got)
        .map(|(&a, &b)| (b as f64 - a).powi(2))
        .sum();
    let den: f64 = want.iter().map(|a| a * a).sum();
    if den == 0.0 {
        if num == 0.0 {
            0.0
        } else {
            f64::INFINITY
        }
    } else {
        num / den
    }
}
