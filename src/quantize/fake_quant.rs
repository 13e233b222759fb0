//! Fake quantization for quantization-aware training (QAT): the CPU reference the GPU
//! kernels ([`crate::gpu::FakeQuant`]) are checked against.
//!
//! Values are split into consecutive groups of `group` (32, 64 or 128), each with a scale
//! `s` and an integer zero point `z` ([`GroupParams`]). In the signed code domain:
//!
//! - symmetric: `qmin = -(2^(b-1) - 1)`, `qmax = 2^(b-1) - 1`, `z = 0`;
//! - asymmetric: `qmin = 0`, `qmax = 2^b - 1`, `z` in `qmin..=qmax`.
//!
//! **Forward**: `c = round(x / s) + z` (the pre-clamp code; `round` is half away from zero,
//! `x / s` an f32 division), `x' = s * (clamp(c, qmin, qmax) - z)`. A group with `s == 0`
//! forwards 0.
//!
//! **Backward** (straight-through estimator): `dL/dx = dL/dx'` where `qmin <= c <= qmax`,
//! 0 where `c` is clamped; a group with `s == 0` passes the gradient through unchanged.
//!
//! **LSQ scale gradient** (Esser et al., "Learned Step Size Quantization", with the zero
//! point held fixed): `dL/ds = g * sum_group dL/dx' * t` with
//! `t = round(x/s) - x/s` inside the range, `qmin - z` below and `qmax - z` above
//! (for symmetric groups: `qmin` and `qmax`), and `g = 1 / sqrt(group * qmax)`.
//! It is 0 for a group with `s == 0`. The sum here is in f64.
//!
//! [`group_params`] derives `(s, z)` exactly as the int formats' reference quantizer does
//! (`src/format/int.rs`: f16 scale, `z = round(-lo / s)`), so with derived parameters the
//! forward output equals `QuantizedTensor::quantize(int{b}_g{group}[_asym]).dequantize()`
//! bit for bit: a network trained through fake quantization is exactly the one that runs
//! after real quantization.

use crate::error::{Error, Result};
use crate::format::{Format, IntFormat};
use half::f16;

/// Bits, group size and symmetry of a fake quantizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FakeQuantConfig {
    /// 4 or 8.
    pub bits: u32,
    /// 32, 64 or 128 values per scale.
    pub group: usize,
    /// Asymmetric (integer zero point) instead of symmetric.
    pub asym: bool,
}

/// The scale and zero point of one group (`z` integer-valued; 0 for symmetric groups).
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct GroupParams {
    pub s: f32,
    pub z: f32,
}

/// Gradients of one backward pass.
#[derive(Clone, Debug, PartialEq)]
pub struct Backward {
    /// `dL/dx`, the straight-through gradient (same length as `x`).
    pub grad_x: Vec<f32>,
    /// `dL/ds` per group (LSQ), if asked for.
    pub grad_s: Option<Vec<f32>>,
}

impl FakeQuantConfig {
    pub const fn new(bits: u32, group: usize, asym: bool) -> Self {
        FakeQuantConfig { bits, group, asym }
    }

    /// The fake quantizer matching an int format (`int4_g32`, `int8_g128_asym`, ...).
    pub fn of_format(format: Format) -> Result<Self> {
        match format {
            Format::Int(f) => Ok(FakeQuantConfig::new(f.bits, f.group, f.asym)),
            f => Err(Error::UnsupportedFormat(format!(
                "fake quantization follows the int formats' rules; {f} is not one"
            ))),
        }
    }

    /// The int format whose real quantization this fake quantizer reproduces.
    pub fn format(&self) -> Format {
        Format::Int(IntFormat::new(self.bits, self.group, self.asym))
    }

    /// Check the bits and group size.
    pub fn validate(&self) -> Result<()> {
        if !matches!(self.bits, 4 | 8) || !matches!(self.group, 32 | 64 | 128) {
            return Err(Error::UnsupportedFormat(format!(
                "fake quantization takes 4 or 8 bits and groups of 32, 64 or 128 (got {} bits, \
                 group {})",
                self.bits, self.group
            )));
        }
        Ok(())
    }

    /// `(qmin, qmax)` in the signed code domain (see the module docs).
    pub fn qrange(&self) -> (f32, f32) {
        if self.asym {
            (0.0, ((1u32 << self.bits) - 1) as f32)
        } else {
            let q = ((1u32 << (self.bits - 1)) - 1) as f32;
            (-q, q)
        }
    }

    /// LSQ's gradient scale `1 / sqrt(group * qmax)`.
    pub fn lsq_grad_scale(&self) -> f32 {
        (1.0 / ((self.group as f64) * self.qrange().1 as f64).sqrt()) as f32
    }

    /// Groups in `len` values, checking that `len` is a whole number of groups.
    pub fn groups(&self, len: usize) -> Result<usize> {
        self.validate()?;
        if !len.is_multiple_of(self.group) {
            return Err(Error::Shape(format!(
                "fake quantization with groups of {} needs a multiple of {} values, got {len}",
                self.group, self.group
            )));
        }
        Ok(len / self.group)
    }
}

/// Round half away from zero (C's `roundf`), as the formats' quantizers do.
fn round_away(v: f32) -> f32 {
    v.round()
}

/// `f16(v)` for a non-negative scale, rounded to nearest even, saturating to 65504.
fn scale_f16(v: f32) -> f32 {
    let s = f16::from_f32(v);
    if s.is_infinite() {
        f16::MAX.to_f32()
    } else {
        s.to_f32()
    }
}

/// The parameters of each group of `x`, chosen as the int formats' reference quantizer does:
/// symmetric `s = f16(max |x| / qmax)`, `z = 0`; asymmetric `lo = min(0, min x)`,
/// `hi = max(0, max x)`, `s = f16((hi - lo) / qmax)`, `z = clamp(round(-lo / s), 0, qmax)`
/// (0 if `s` is 0).
pub fn group_params(cfg: FakeQuantConfig, x: &[f32]) -> Result<Vec<GroupParams>> {
    cfg.groups(x.len())?;
    let (_, qmax) = cfg.qrange();
    Ok(x.chunks_exact(cfg.group)
        .map(|g| {
            if cfg.asym {
                let (lo, hi) = g
                    .iter()
                    .fold((0.0f32, 0.0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
                let s = scale_f16((hi - lo) / qmax);
                let z = if s == 0.0 {
                    0.0
                } else {
                    // abs: +0, never -0, when lo is 0 (as the GPU writes it)
                    round_away(-lo / s).clamp(0.0, qmax).abs()
                };
                GroupParams { s, z }
            } else {
                let amax = g.iter().fold(0.0f32, |a, &v| a.max(v.abs()));
                GroupParams {
                    s: scale_f16(amax / qmax),
                    z: 0.0,
                }
            }
        })
        .collect())
}

fn check_params(cfg: FakeQuantConfig, len: usize, params: &[GroupParams]) -> Result<()> {
    let groups = cfg.groups(len)?;
    if params.len() != groups {
        return Err(Error::Shape(format!(
            "{len} values in groups of {} need {groups} group params, got {}",
            cfg.group,
            params.len()
        )));
    }
    Ok(())
}

/// The pre-clamp code `round(x / s) + z` of one value.
pub fn pre_clamp_code(x: f32, p: GroupParams) -> f32 {
    round_away(x / p.s) + p.z
}

/// Fake-quantize one value with its group's parameters.
pub fn fake_quant_value(cfg: FakeQuantConfig, x: f32, p: GroupParams) -> f32 {
    if p.s == 0.0 {
        return 0.0;
    }
    let (qmin, qmax) = cfg.qrange();
    p.s * (pre_clamp_code(x, p).clamp(qmin, qmax) - p.z)
}

/// Forward: `x'` for every value of `x` (a whole number of groups) with `params` per group.
pub fn forward(cfg: FakeQuantConfig, x: &[f32], params: &[GroupParams]) -> Result<Vec<f32>> {
    check_params(cfg, x.len(), params)?;
    Ok(x.chunks_exact(cfg.group)
        .zip(params)
        .flat_map(|(g, &p)| g.iter().map(move |&v| fake_quant_value(cfg, v, p)))
        .collect())
}

/// Forward with parameters derived from `x` itself ([`group_params`]): returns `(x', params)`.
pub fn forward_derived(cfg: FakeQuantConfig, x: &[f32]) -> Result<(Vec<f32>, Vec<GroupParams>)> {
    let params = group_params(cfg, x)?;
    Ok((forward(cfg, x, &params)?, params))
}

/// Backward: the straight-through `dL/dx` and, if `lsq`, the LSQ `dL/ds` per group (see the
/// module docs), given `dL/dx'` in `grad_y`.
pub fn backward(
    cfg: FakeQuantConfig,
    x: &[f32],
    params: &[GroupParams],
    grad_y: &[f32],
    lsq: bool,
) -> Result<Backward> {
    check_params(cfg, x.len(), params)?;
    crate::format::check_len("grad_y", grad_y.len(), 1, x.len())?;
    let (qmin, qmax) = cfg.qrange();
    let gscale = cfg.lsq_grad_scale() as f64;
    let mut grad_x = Vec::with_capacity(x.len());
    let mut grad_s = Vec::with_capacity(params.len());
    for ((g, gy), &p) in x
        .chunks_exact(cfg.group)
        .zip(grad_y.chunks_exact(cfg.group))
        .zip(params)
    {
        let mut acc = 0.0f64;
        for (&v, &dy) in g.iter().zip(gy) {
            if p.s == 0.0 {
                grad_x.push(dy);
                continue;
            }
            let t = v / p.s;
            let c = round_away(t) + p.z;
            let (mask, term) = if c < qmin {
                (0.0, qmin - p.z)
            } else if c > qmax {
                (0.0, qmax - p.z)
            } else {
                (dy, round_away(t) - t)
            };
            grad_x.push(mask);
            acc += dy as f64 * term as f64;
        }
        grad_s.push((acc * gscale) as f32);
    }
    Ok(Backward {
        grad_x,
        grad_s: lsq.then_some(grad_s),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::QuantizedTensor;
    use crate::rng::Rng;

    fn configs() -> Vec<FakeQuantConfig> {
        let mut v = Vec::new();
        for bits in [4, 8] {
            for group in [32, 64, 128] {
                for asym in [false, true] {
                    v.push(FakeQuantConfig::new(bits, group, asym));
                }
            }
        }
        v
    }

    /// With derived parameters, fake quantization is the int format's quantize + dequantize.
    #[test]
    fn derived_forward_equals_real_quantization_bit_for_bit() {
        let (rows, k) = (6, 256);
        let mut rng = Rng::new(7);
        let mut w = rng.normal_vec(rows * k);
        w[..64].iter_mut().for_each(|v| *v = 0.0); // all-zero groups
        w[128..160].iter_mut().for_each(|v| *v = v.abs() + 1.0); // all positive (asym lo = 0)
        for cfg in configs() {
            let (fq, _) = forward_derived(cfg, &w).unwrap();
            let real = QuantizedTensor::quantize(cfg.format(), &w, rows, k)
                .unwrap()
                .dequantize();
            let same = fq
                .iter()
                .zip(&real)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{cfg:?}");
        }
    }

    #[test]
    fn ste_mask_and_lsq_terms() {
        let cfg = FakeQuantConfig::new(4, 32, false);
        let mut x = vec![0.0f32; 32];
        x[0] = 0.26; // 0.26 / 0.1 = 2.6 -> 3, inside: t = 3 - 2.6
        x[1] = 0.9; // 9 > 7: clamped above
        x[2] = -0.74; // -7.4 -> -7: inside
        x[3] = -0.76; // -7.6 -> -8 < -7: clamped below
        let p = [GroupParams { s: 0.1, z: 0.0 }];
        let gy = vec![1.0f32; 32];
        let b = backward(cfg, &x, &p, &gy, true).unwrap();
        assert_eq!(&b.grad_x[..4], &[1.0, 0.0, 1.0, 0.0]);
        let y = forward(cfg, &x, &p).unwrap();
        assert_eq!(y[1], 0.1 * 7.0);
        assert_eq!(y[3], 0.1 * -7.0);
        let t = |v: f32| (v / 0.1f32).round() - v / 0.1f32;
        let want = (t(0.26) as f64 + 7.0 + t(-0.74) as f64 - 7.0) * cfg.lsq_grad_scale() as f64;
        let got = b.grad_s.unwrap()[0] as f64;
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        // Asymmetric: the clamp terms are qmin - z and qmax - z.
        let cfg = FakeQuantConfig::new(4, 32, true);
        let p = [GroupParams { s: 0.1, z: 3.0 }];
        let mut x = vec![0.0f32; 32];
        x[0] = -0.5; // -5 + 3 < 0
        x[1] = 1.3; // 13 + 3 > 15
        let b = backward(cfg, &x, &p, &gy, true).unwrap();
        assert_eq!(&b.grad_x[..2], &[0.0, 0.0]);
        let want = ((0.0 - 3.0) + (15.0 - 3.0)) * cfg.lsq_grad_scale() as f64;
        assert!((b.grad_s.unwrap()[0] as f64 - want).abs() < 1e-6);
    }

    /// The LSQ gradient is the derivative of the forward in `s` (away from rounding jumps).
    #[test]
    fn lsq_gradient_matches_finite_differences_of_the_forward() {
        let mut rng = Rng::new(3);
        let mut checked = 0;
        for cfg in configs() {
            let x = rng.normal_vec(cfg.group);
            let gy = rng.normal_vec(cfg.group);
            let p = group_params(cfg, &x).unwrap()[0];
            let p = GroupParams {
                s: p.s * 0.8,
                z: p.z,
            }; // some values clamp
            let loss = |s: f32| -> f64 {
                forward(cfg, &x, &[GroupParams { s, z: p.z }])
                    .unwrap()
                    .iter()
                    .zip(&gy)
                    .map(|(&a, &b)| a as f64 * b as f64)
                    .sum()
            };
            // d/ds of s * (round(x/s) + z - z) with the codes held: a tiny step keeps them.
            let h = p.s * 1e-4;
            let codes_same = forward(cfg, &x, &[GroupParams { s: p.s + h, z: p.z }])
                .unwrap()
                .iter()
                .zip(forward(cfg, &x, &[p]).unwrap())
                .all(|(a, b)| (a / (p.s + h) - b / p.s).abs() < 1e-3);
            if !codes_same {
                continue;
            }
            let fd = (loss(p.s + h) - loss(p.s)) / h as f64;
            // The forward's derivative with codes held is sum gy * (clamped code - z); LSQ
            // adds -x/s inside the range (the STE through round): subtract that part.
            let (qmin, qmax) = cfg.qrange();
            let inside: f64 = x
                .iter()
                .zip(&gy)
                .filter(|(&v, _)| {
                    let c = pre_clamp_code(v, p);
                    c >= qmin && c <= qmax
                })
                .map(|(&v, &g)| g as f64 * (v / p.s) as f64)
                .sum();
            let lsq = backward(cfg, &x, &[p], &gy, true).unwrap().grad_s.unwrap()[0] as f64
                / cfg.lsq_grad_scale() as f64;
            assert!(
                (fd - inside - lsq).abs() <= 1e-2 * (1.0 + lsq.abs()),
                "{cfg:?}: fd {fd} - {inside} vs {lsq}"
            );
            checked += 1;
        }
        assert!(checked >= 8, "only {checked} configs kept their codes");
    }

    #[test]
    fn bad_shapes_are_errors() {
        let cfg = FakeQuantConfig::new(4, 32, false);
        assert!(forward_derived(cfg, &[0.0; 33]).is_err());
        assert!(forward(cfg, &[0.0; 64], &[GroupParams::default()]).is_err());
        assert!(forward_derived(FakeQuantConfig::new(3, 32, false), &[0.0; 32]).is_err());
        assert!(forward_derived(FakeQuantConfig::new(4, 48, false), &[0.0; 48]).is_err());
        let p = [GroupParams::default()];
        assert!(backward(cfg, &[0.0; 32], &p, &[0.0; 31], false).is_err());
        assert!(FakeQuantConfig::of_format(Format::Q4_0).is_err());
        let c = FakeQuantConfig::of_format("int8_g64_asym".parse().unwrap()).unwrap();
        assert_eq!(c, FakeQuantConfig::new(8, 64, true));
    }
}
