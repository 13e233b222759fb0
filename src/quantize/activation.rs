//! Int8 activation quantization (W8A8 / W4A8) on the CPU: the reference the GPU kernels in
//! [`crate::gpu::Int8Kernels`] are tested against.
//!
//! Activations `x` (`n` rows, "tokens", of `k` values) become signed int8 codes
//! `q = clamp(round(x / s), -127, 127)` (round half away from zero, the division in f32)
//! with one f32 scale `s` per row and per group of [`ACT_GROUP`] channels:
//! - **dynamic** (per token): `s_t = max_i |x_t,i| / 127`, the same for every group of row `t`;
//! - **static**: scales fixed in advance from calibration data by an [`Observer`], one per
//!   tensor or one per group of [`ACT_GROUP`] channels ([`Granularity`]). Per-channel scales
//!   are kept at group granularity because the integer dot product needs one activation
//!   scale per block of codes it sums.
//!
//! A scale of 0 (an all-zero row or group) gives all-zero codes.
//!
//! # Integer product
//! For weights with signed integer codes `c_w` and one scale `s_w` per block (Q8_0: the
//! bytes; symmetric int8: `q - 128`; symmetric int4: `q - 8`), [`int_accumulators`] is the
//! exact `i32` sum `acc = sum c_w * c_x` over each group of 32 channels, and [`int_matmul`]
//! is `y[t][r] = sum_groups s_w * s_x * acc` in f64. The GPU must reproduce the accumulators
//! bit for bit.

use crate::error::{Error, Result};
use crate::format::{check_len, round_away, Format, QuantizedTensor};
use crate::quantize::Activations;
use half::f16;

/// Channels per activation scale group (and per `i32` accumulator): 32.
pub const ACT_GROUP: usize = 32;
/// Largest activation code magnitude.
pub const ACT_QMAX: f32 = 127.0;

/// Int8 activations: `n` x `k` codes and `n` x `k / ACT_GROUP` scales, both row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantizedActivations {
    pub n: usize,
    pub k: usize,
    pub codes: Vec<i8>,
    /// Scale of row `t`, group `g` at `t * (k / ACT_GROUP) + g`.
    pub scales: Vec<f32>,
}

impl QuantizedActivations {
    /// Scale groups per row.
    pub fn groups(&self) -> usize {
        self.k / ACT_GROUP
    }

    /// The dequantized values `s * q`.
    pub fn dequantize(&self) -> Vec<f32> {
        let g = self.groups();
        self.codes
            .iter()
            .enumerate()
            .map(|(i, &q)| {
                let (t, c) = (i / self.k, i % self.k);
                self.scales[t * g + c / ACT_GROUP] * q as f32
            })
            .collect()
    }
}

/// Quantize one value with scale `s` (the rule the GPU kernel follows).
pub fn quantize_value(x: f32, s: f32) -> i8 {
    if s == 0.0 {
        return 0;
    }
    round_away(x / s).clamp(-ACT_QMAX, ACT_QMAX) as i8
}

/// Check that `k` is a positive multiple of [`ACT_GROUP`].
pub fn check_act_k(k: usize) -> Result<()> {
    if k == 0 || !k.is_multiple_of(ACT_GROUP) {
        return Err(Error::Shape(format!(
            "int8 activations need k a positive multiple of {ACT_GROUP}; got {k}"
        )));
    }
    Ok(())
}

fn quantize_with(x: &[f32], n: usize, k: usize, scales: Vec<f32>) -> QuantizedActivations {
    let g = k / ACT_GROUP;
    let codes = x
        .iter()
        .enumerate()
        .map(|(i, &v)| quantize_value(v, scales[(i / k) * g + (i % k) / ACT_GROUP]))
        .collect();
    QuantizedActivations {
        n,
        k,
        codes,
        scales,
    }
}

/// Dynamic per-token quantization: `s_t = max |x_t| / 127` (f32).
pub fn quantize_dynamic(x: &[f32], n: usize, k: usize) -> Result<QuantizedActivations> {
    check_act_k(k)?;
    check_len("x", x.len(), n, k)?;
    let g = k / ACT_GROUP;
    let mut scales = Vec::with_capacity(n * g);
    for row in x.chunks_exact(k) {
        let amax = row.iter().fold(0.0f32, |a, &v| a.max(v.abs()));
        scales.extend(std::iter::repeat_n(amax / ACT_QMAX, g));
    }
    Ok(quantize_with(x, n, k, scales))
}

/// Fixed activation scales, from an [`observe`] pass over calibration data.
#[derive(Clone, Debug, PartialEq)]
pub enum StaticScales {
    /// One scale for the whole tensor.
    PerTensor(f32),
    /// One scale per group of [`ACT_GROUP`] channels (`k / ACT_GROUP` of them).
    PerGroup(Vec<f32>),
}

impl StaticScales {
    /// The scale of each of the `k / ACT_GROUP` channel groups.
    pub fn group_scales(&self, k: usize) -> Result<Vec<f32>> {
        check_act_k(k)?;
        let g = k / ACT_GROUP;
        match self {
            StaticScales::PerTensor(s) => Ok(vec![*s; g]),
            StaticScales::PerGroup(v) if v.len() == g => Ok(v.clone()),
            StaticScales::PerGroup(v) => Err(Error::Shape(format!(
                "{} static activation scales for k = {k}; expected {g}",
                v.len()
            ))),
        }
    }
}

/// Static quantization with fixed scales (values beyond `127 s` clip).
pub fn quantize_static(
    x: &[f32],
    n: usize,
    k: usize,
    scales: &StaticScales,
) -> Result<QuantizedActivations> {
    check_len("x", x.len(), n, k)?;
    let gs = scales.group_scales(k)?;
    let all: Vec<f32> = (0..n).flat_map(|_| gs.iter().copied()).collect();
    Ok(quantize_with(x, n, k, all))
}

/// How a static scale's clipping range is chosen from calibration values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Observer {
    /// The largest magnitude seen.
    MinMax,
    /// The given percentile (e.g. 99.99) of the magnitudes seen.
    Percentile(f64),
    /// The clipping range (a grid of 1/64 .. 64/64 of the largest magnitude) with the least
    /// squared quantization error over the values seen.
    Mse,
}

/// Which values share one static scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Granularity {
    PerTensor,
    /// One scale per group of [`ACT_GROUP`] channels (over all samples).
    PerChannelGroup,
}

/// The clipping magnitude `observer` picks for a set of values.
pub fn observe_range(values: &[f32], observer: Observer) -> f32 {
    let amax = values.iter().fold(0.0f32, |a, &v| a.max(v.abs()));
    match observer {
        Observer::MinMax => amax,
        Observer::Percentile(p) => {
            if values.is_empty() {
                return 0.0;
            }
            let mut mags: Vec<f32> = values.iter().map(|v| v.abs()).collect();
            let rank = ((p.clamp(0.0, 100.0) / 100.0) * mags.len() as f64).ceil() as usize;
            let idx = rank.clamp(1, mags.len()) - 1;
            let (_, v, _) = mags.select_nth_unstable_by(idx, f32::total_cmp);
            *v
        }
        Observer::Mse => {
            let mut best = (f64::INFINITY, amax);
            for i in 1..=64 {
                let c = amax * i as f32 / 64.0;
                let s = c / ACT_QMAX;
                let err: f64 = values
                    .iter()
                    .map(|&v| {
                        let d = s * quantize_value(v, s) as f32;
                        (v as f64 - d as f64).powi(2)
                    })
                    .sum();
                if err < best.0 {
                    best = (err, c);
                }
            }
            best.1
        }
    }
}

/// Static scales (`range / 127`) from calibration activations.
pub fn observe(
    acts: &Activations,
    observer: Observer,
    granularity: Granularity,
) -> Result<StaticScales> {
    let k = acts.k();
    check_act_k(k)?;
    match granularity {
        Granularity::PerTensor => Ok(StaticScales::PerTensor(
            observe_range(acts.data(), observer) / ACT_QMAX,
        )),
        Granularity::PerChannelGroup => {
            let mut out = Vec::with_capacity(k / ACT_GROUP);
            let mut vals = Vec::with_capacity(acts.samples() * ACT_GROUP);
            for g in 0..k / ACT_GROUP {
                vals.clear();
                for row in acts.data().chunks_exact(k) {
                    vals.extend_from_slice(&row[g * ACT_GROUP..(g + 1) * ACT_GROUP]);
                }
                out.push(observe_range(&vals, observer) / ACT_QMAX);
            }
            Ok(StaticScales::PerGroup(out))
        }
    }
}

/// Whether `format` has signed integer codes the int8-activation kernels can use: Q8_0 and
/// the symmetric int8 / int4 formats.
pub fn supports_int8_activations(format: Format) -> bool {
    match format {
        Format::Q8_0 => true,
        Format::Int(f) => !f.asym && (f.bits == 8 || f.bits == 4),
        _ => false,
    }
}

/// A weight as signed integer codes and one f32 scale per block.
#[derive(Clone, Debug, PartialEq)]
pub struct IntWeights {
    pub rows: usize,
    pub k: usize,
    /// Weights per scale.
    pub block: usize,
    /// `rows` x `k` signed codes.
    pub codes: Vec<i8>,
    /// `rows` x `k / block` scales.
    pub scales: Vec<f32>,
}

impl IntWeights {
    /// The signed codes and scales of a Q8_0 or symmetric int8 / int4 tensor.
    pub fn from_tensor(t: &QuantizedTensor) -> Result<Self> {
        let format = t.format();
        if !supports_int8_activations(format) {
            return Err(Error::UnsupportedFormat(format!(
                "{format} has no signed integer codes for int8 activations \
                 (use q8_0 or a symmetric int8/int4 format)"
            )));
        }
        let c = format.codec();
        let (block, bytes) = (c.block_values(), c.block_bytes());
        let (rows, k) = (t.rows(), t.k());
        let mut codes = Vec::with_capacity(rows * k);
        let mut scales = Vec::with_capacity(rows * k / block);
        for b in t.bytes().chunks_exact(bytes) {
            scales.push(f16::from_le_bytes([b[0], b[1]]).to_f32());
            let qs = &b[2..];
            match format {
                Format::Q8_0 => codes.extend(qs.iter().map(|&v| v as i8)),
                Format::Int(f) if f.bits == 8 => {
                    codes.extend(qs.iter().map(|&v| (v as i32 - 128) as i8))
                }
                _ => {
                    codes.extend((0..block).map(|i| ((qs[i / 2] >> (4 * (i & 1))) & 15) as i8 - 8))
                }
            }
        }
        Ok(IntWeights {
            rows,
            k,
            block,
            codes,
            scales,
        })
    }

    /// The weights `s * c` (equal to the tensor's dequantization).
    pub fn dequantize(&self) -> Vec<f32> {
        self.codes
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                let (r, j) = (i / self.k, i % self.k);
                self.scales[r * (self.k / self.block) + j / self.block] * c as f32
            })
            .collect()
    }
}

fn check_pair(w: &IntWeights, a: &QuantizedActivations) -> Result<()> {
    if w.k != a.k {
        return Err(Error::Shape(format!(
            "weights have k = {}, activations k = {}",
            w.k, a.k
        )));
    }
    check_act_k(a.k)
}

/// The exact `i32` accumulators `acc[t][r][g] = sum_{i in group g} c_w[r][i] * c_x[t][i]`,
/// laid out `(t * rows + r) * (k / ACT_GROUP) + g`.
pub fn int_accumulators(w: &IntWeights, a: &QuantizedActivations) -> Result<Vec<i32>> {
    check_pair(w, a)?;
    let (k, g) = (a.k, a.groups());
    let mut out = Vec::with_capacity(a.n * w.rows * g);
    for xt in a.codes.chunks_exact(k) {
        for wr in w.codes.chunks_exact(k) {
            for (xg, wg) in xt.chunks_exact(ACT_GROUP).zip(wr.chunks_exact(ACT_GROUP)) {
                out.push(xg.iter().zip(wg).map(|(&p, &q)| p as i32 * q as i32).sum());
            }
        }
    }
    Ok(out)
}

/// `y[t][r] = sum_g s_w[r][block(g)] * s_x[t][g] * acc[t][r][g]` in f64 (`n` x `rows`).
pub fn int_matmul(w: &IntWeights, a: &QuantizedActivations) -> Result<Vec<f64>> {
    let acc = int_accumulators(w, a)?;
    Ok(int_matmul_from_acc(w, a, &acc))
}

/// [`int_matmul`] from given accumulators (e.g. ones read back from the GPU).
pub fn int_matmul_from_acc(w: &IntWeights, a: &QuantizedActivations, acc: &[i32]) -> Vec<f64> {
    let g = a.groups();
    let wb = w.k / w.block;
    let mut y = Vec::with_capacity(a.n * w.rows);
    for t in 0..a.n {
        for r in 0..w.rows {
            let mut s = 0f64;
            for j in 0..g {
                let sw = w.scales[r * wb + j * ACT_GROUP / w.block] as f64;
                let sx = a.scales[t * g + j] as f64;
                s += sw * sx * acc[(t * w.rows + r) * g + j] as f64;
            }
            y.push(s);
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::reference::{matmul_f64, nmse};
    use crate::format::IntFormat;
    use crate::rng::Rng;

    #[test]
    fn dynamic_codes_hit_127_and_round_half_away() {
        let mut x = vec![0.0f32; 32];
        x[0] = -2.54;
        x[1] = 0.01;
        x[2] = 1.27;
        let a = quantize_dynamic(&x, 1, 32).unwrap();
        assert_eq!(a.scales[0], 2.54 / 127.0);
        assert_eq!(a.codes[0], -127);
        assert_eq!(a.codes[1], round_away(0.01 / a.scales[0]) as i8);
        assert_eq!(quantize_value(2.5, 1.0), 3);
        assert_eq!(quantize_value(-2.5, 1.0), -3);
        assert_eq!(quantize_value(1e9, 1.0), 127);
        assert_eq!(quantize_value(5.0, 0.0), 0);
        let z = quantize_dynamic(&[0.0; 64], 2, 32).unwrap();
        assert!(z.codes.iter().all(|&c| c == 0) && z.scales.iter().all(|&s| s == 0.0));
    }

    #[test]
    fn integer_product_matches_float_over_dequantized_operands() {
        let (rows, k, n) = (5, 256, 3);
        let mut rng = Rng::new(3);
        let wf = rng.normal_vec(rows * k);
        let x = rng.normal_vec(n * k);
        for format in [
            Format::Q8_0,
            Format::Int(IntFormat::new(8, 64, false)),
            Format::Int(IntFormat::new(4, 128, false)),
            Format::Int(IntFormat::new(4, 32, false)),
        ] {
            let q = QuantizedTensor::quantize(format, &wf, rows, k).unwrap();
            let w = IntWeights::from_tensor(&q).unwrap();
            assert_eq!(w.dequantize(), q.dequantize(), "{format}");
            let a = quantize_dynamic(&x, n, k).unwrap();
            let y = int_matmul(&w, &a).unwrap();
            let want = matmul_f64(&w.dequantize(), rows, k, &a.dequantize(), n);
            let yf: Vec<f32> = y.iter().map(|&v| v as f32).collect();
            assert!(nmse(&want, &yf) < 1e-12, "{format}");
            // Against unquantized x: the activation error dominates.
            let exact = matmul_f64(&q.dequantize(), rows, k, &x, n);
            assert!(nmse(&exact, &yf) < 1e-3, "{format}");
        }
        let asym = Format::Int(IntFormat::new(4, 32, true));
        let q = QuantizedTensor::quantize(asym, &wf, rows, k).unwrap();
        assert!(IntWeights::from_tensor(&q).is_err());
    }

    #[test]
    fn observers_order_and_static_scales() {
        let mut rng = Rng::new(9);
        let (samples, k) = (200, 64);
        let mut data = rng.normal_vec(samples * k);
        data[5] = 40.0; // one outlier in group 0
        let acts = Activations::new(samples, k, data.clone()).unwrap();
        let mm = observe(&acts, Observer::MinMax, Granularity::PerTensor).unwrap();
        assert_eq!(mm, StaticScales::PerTensor(40.0 / 127.0));
        let StaticScales::PerTensor(p) =
            observe(&acts, Observer::Percentile(99.9), Granularity::PerTensor).unwrap()
        else {
            panic!()
        };
        assert!(p < 40.0 / 127.0 && p > 2.0 / 127.0, "{p}");
        let StaticScales::PerTensor(m) =
            observe(&acts, Observer::Mse, Granularity::PerTensor).unwrap()
        else {
            panic!()
        };
        assert!(m < 40.0 / 127.0, "{m}");
        let pg = observe(&acts, Observer::MinMax, Granularity::PerChannelGroup).unwrap();
        let gs = pg.group_scales(k).unwrap();
        assert_eq!(gs[0], 40.0 / 127.0);
        assert!(gs[1] < 10.0 / 127.0);
        let a = quantize_static(&data, samples, k, &pg).unwrap();
        assert_eq!(a.codes[5], 127);
        assert!(pg.group_scales(96).is_err());
    }
}
