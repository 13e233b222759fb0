//! Post-training weight quantization methods: how a format's scales (and codes) are chosen.
//!
//! [`QuantizedTensor::quantize`] is round-to-nearest with each format's reference rule
//! (byte-identical to ggml for the GGUF types) and stays the default ([`Method::Rtn`]).
//! The other methods write the *same* block layouts, so every file they produce reads and
//! runs exactly like an RTN one:
//!
//! | method | needs calibration | formats | stores |
//! |---|---|---|---|
//! | [`Method::Rtn`] | no | all | the reference blocks |
//! | [`Method::Mse`] | no | all (exact grid search for Q4_0, Q4_1, Q8_0, int*; clipping through the format's own quantizer for the rest) | blocks with searched scales |
//! | [`Method::Gptq`] | yes | Q4_0, Q4_1, Q8_0, int* | blocks with error-compensated codes |
//! | [`Method::Awq`] | yes | all | blocks of `W diag(s)` **and** the scales `s` |
//! | [`Method::Absmean`] | no | TQ1_0, TQ2_0 | ternary blocks with scale mean \|w\| (BitNet b1.58) instead of ggml's max \|w\| |
//!
//! AWQ's output is only correct if the layer's input is divided by `s` (see [`awq`]):
//! [`Quantized::awq_scales`] returns them; the CLI stores them as an F32 tensor
//! `<name>.awq_scales` next to the weight.
//!
//! The per-format "quantize this block with this scale" entry points live in [`block`]
//! ([`BlockSpec`]); the [`Codec`](crate::format::Codec) trait is unchanged.

pub mod activation;
pub mod awq;
pub mod block;
pub mod calib;
pub mod fake_quant;
pub mod gptq;
pub mod mse;

pub use block::{BlockParams, BlockSpec, Grid, Prepared};
pub use calib::{Activations, Calibration};
pub use fake_quant::{FakeQuantConfig, GroupParams};

use crate::error::{Error, Result};
use crate::format::{check_len, Format, QuantizedTensor};
use std::fmt;
use std::str::FromStr;

/// How a weight's quantization parameters are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum Method {
    /// Round to nearest with the format's reference scales (ggml's reference quantizers).
    #[default]
    Rtn,
    /// Per-block search of the scale (and min / zero point) with the lowest squared error.
    Mse,
    /// GPTQ with damping `damp` (fraction of the mean Hessian diagonal) and lazy batches of
    /// `block` columns.
    Gptq { damp: f64, block: usize },
    /// AWQ with the scale exponent searched over `i / grid`, `i = 0..=grid`.
    Awq { grid: usize },
    /// The absmean rule of 1.58-bit models for the ternary formats (TQ1_0, TQ2_0): scale =
    /// mean |w| per block instead of ggml's max |w|.
    Absmean,
}

impl Method {
    /// GPTQ with the usual settings: damp 0.01, lazy batches of 128 columns.
    pub const GPTQ: Method = Method::Gptq {
        damp: 0.01,
        block: 128,
    };
    /// AWQ with the usual grid of 20.
    pub const AWQ: Method = Method::Awq { grid: 20 };

    /// Whether the method needs calibration activations.
    pub fn needs_calibration(&self) -> bool {
        matches!(self, Method::Gptq { .. } | Method::Awq { .. })
    }

    /// The short name (`rtn`, `mse`, `gptq`, `awq`).
    pub fn name(&self) -> &'static str {
        match self {
            Method::Rtn => "rtn",
            Method::Mse => "mse",
            Method::Gptq { .. } => "gptq",
            Method::Awq { .. } => "awq",
            Method::Absmean => "absmean",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Method::Gptq { damp, block } => write!(f, "gptq(damp={damp}, block={block})"),
            Method::Awq { grid } => write!(f, "awq(grid={grid})"),
            m => f.write_str(m.name()),
        }
    }
}

impl FromStr for Method {
    type Err = Error;
    /// `rtn`, `mse`, `gptq` or `awq` (with their usual settings).
    fn from_str(s: &str) -> Result<Method> {
        match s.to_ascii_lowercase().as_str() {
            "rtn" => Ok(Method::Rtn),
            "mse" => Ok(Method::Mse),
            "gptq" => Ok(Method::GPTQ),
            "awq" => Ok(Method::AWQ),
            "absmean" => Ok(Method::Absmean),
            _ => Err(Error::InvalidArgument(format!(
                "'{s}' is not a quantization method; choose one of: rtn, mse, gptq, awq, absmean"
            ))),
        }
    }
}

/// A weight quantized by a [`Method`].
#[derive(Clone, Debug, PartialEq)]
pub struct Quantized {
    /// The stored blocks (for AWQ: of `W diag(s)`).
    pub tensor: QuantizedTensor,
    /// The method that produced it.
    pub method: Method,
    /// AWQ only: the per-input-channel scales `s` (length `k`). The layer computes
    /// `x W^T` only if its input is divided by `s` first (fold `1/s` into the previous
    /// layer); `tensor` alone stands for `W diag(s)`.
    pub awq_scales: Option<Vec<f32>>,
    /// AWQ only: the exponent the search chose.
    pub awq_alpha: Option<f64>,
}

impl Quantized {
    /// The weights this result stands for (`deq` for every method but AWQ, whose
    /// compensating `1/s` is folded back: `deq diag(1/s)`), `rows` x `k` row-major.
    pub fn effective_weights(&self) -> Vec<f32> {
        let deq = self.tensor.dequantize();
        match &self.awq_scales {
            Some(s) => awq::effective(&deq, s),
            None => deq,
        }
    }
}

/// Quantize `rows` x `k` f32 weights (row-major) to `format` with `method`.
///
/// `calib` is the layer's input (`samples` x `k`); GPTQ and AWQ need it
/// ([`Error::MissingCalibration`] otherwise), and its `k` must match ([`Error::Calibration`]).
/// [`Method::Rtn`] is exactly [`QuantizedTensor::quantize`].
pub fn quantize(
    format: Format,
    method: Method,
    weights: &[f32],
    rows: usize,
    k: usize,
    calib: Option<&Activations>,
) -> Result<Quantized> {
    format.check_k(k)?;
    check_len("weights", weights.len(), rows, k)?;
    if let Some(x) = calib {
        if x.k() != k {
            return Err(Error::Calibration(format!(
                "activations have K = {}, but the weight's rows have length {k}",
                x.k()
            )));
        }
    }
    let calib_for = |m: &Method| -> Result<&Activations> {
        if let Some(i) = weights.iter().position(|v| !v.is_finite()) {
            return Err(Error::InvalidArgument(format!(
                "weight [{}, {}] is {}; {} needs finite weights",
                i / k,
                i % k,
                weights[i],
                m.name()
            )));
        }
        calib.ok_or_else(|| Error::MissingCalibration {
            method: m.name().to_string(),
        })
    };
    let done = |tensor| Quantized {
        tensor,
        method,
        awq_scales: None,
        awq_alpha: None,
    };
    match method {
        Method::Rtn => Ok(done(QuantizedTensor::quantize(format, weights, rows, k)?)),
        Method::Absmean => {
            let tq1 = match format {
                Format::TQ1_0 => true,
                Format::TQ2_0 => false,
                other => {
                    return Err(Error::UnsupportedFormat(format!(
                        "absmean is the rule of the ternary formats tq1_0 and tq2_0, not {other}"
                    )))
                }
            };
            format.check_k(k)?;
            check_len("weights", weights.len(), rows, k)?;
            let bytes = crate::format::ternary_absmean(tq1, weights);
            Ok(done(QuantizedTensor::from_bytes(format, rows, k, bytes)?))
        }
        Method::Mse => {
            let c = format.codec();
            let (bv, bb) = (c.block_values(), c.block_bytes());
            let spec = BlockSpec::new(format);
            let blocks = rows * (k / bv);
            let parts = parallel_chunks(blocks, |range| {
                let mut out = vec![0u8; range.len() * bb];
                for (ob, b) in out.chunks_exact_mut(bb).zip(range.clone()) {
                    let x = &weights[b * bv..(b + 1) * bv];
                    match &spec {
                        Some(spec) => spec.encode(x, mse::search(spec, x), ob),
                        None => mse::clip_search_codec(c, x, ob),
                    }
                }
                out
            });
            let data = parts.concat();
            Ok(done(QuantizedTensor::from_bytes(format, rows, k, data)?))
        }
        Method::Gptq { damp, block } => {
            let spec = BlockSpec::new(format).ok_or_else(|| {
                Error::UnsupportedFormat(format!(
                    "gptq needs a format whose blocks are one linear grid (q4_0, q4_1, q8_0, \
                     int4_*/int8_*); {format} is not one"
                ))
            })?;
            let x = calib_for(&method)?;
            if !(damp.is_finite() && damp >= 0.0) {
                return Err(Error::InvalidArgument(format!(
                    "gptq damping must be finite and >= 0, got {damp}"
                )));
            }
            let u = gptq::prepare(x, damp)?;
            let data = gptq::quantize(&spec, weights, rows, k, &u, block);
            Ok(done(QuantizedTensor::from_bytes(format, rows, k, data)?))
        }
        Method::Awq { grid } => {
            let x = calib_for(&method)?;
            let r = awq::quantize(format, weights, rows, k, x, grid)?;
            Ok(Quantized {
                tensor: r.tensor,
                method,
                awq_scales: Some(r.scales),
                awq_alpha: Some(r.alpha),
            })
        }
    }
}

/// Errors of a quantized weight against the original.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Report {
    /// `sum (w' - w)^2 / sum w^2` over the effective weights.
    pub weight_nmse: f64,
    /// `||X W'^T - X W^T||^2 / ||X W^T||^2` on the calibration inputs, when given.
    pub output_nmse: Option<f64>,
}

/// Weight NMSE of `q` against `weights`, and output NMSE on `calib` when given.
pub fn evaluate(q: &Quantized, weights: &[f32], calib: Option<&Activations>) -> Report {
    let (rows, k) = (q.tensor.rows(), q.tensor.k());
    let eff = q.effective_weights();
    Report {
        weight_nmse: weight_nmse(weights, &eff),
        output_nmse: calib.map(|x| output_nmse(x, weights, &eff, rows, k)),
    }
}

/// `sum (got - want)^2 / sum want^2` (f64; infinite if `got` is not finite).
pub fn weight_nmse(want: &[f32], got: &[f32]) -> f64 {
    let (mut num, mut den) = (0f64, 0f64);
    for (&a, &b) in want.iter().zip(got) {
        num += (b as f64 - a as f64).powi(2);
        den += (a as f64).powi(2);
    }
    ratio(num, den)
}

fn ratio(num: f64, den: f64) -> f64 {
    if num.is_nan() {
        f64::INFINITY
    } else if den == 0.0 {
        if num == 0.0 {
            0.0
        } else {
            f64::INFINITY
        }
    } else {
        num / den
    }
}

/// `||X W'^T - X W^T||^2 / ||X W^T||^2` for `rows` x `k` weights.
pub fn output_nmse(x: &Activations, want: &[f32], got: &[f32], rows: usize, k: usize) -> f64 {
    let num = output_sq_err(x.data(), x.samples(), want, got, rows, k);
    let zero = vec![0f32; want.len()];
    let den = output_sq_err(x.data(), x.samples(), &zero, want, rows, k);
    ratio(num, den)
}

/// `||X (got - want)^T||^2` in f64, `x` being `n` x `k`.
pub(crate) fn output_sq_err(
    x: &[f32],
    n: usize,
    want: &[f32],
    got: &[f32],
    rows: usize,
    k: usize,
) -> f64 {
    let parts = parallel_chunks(rows, |range| {
        let mut d = vec![0f64; k];
        let mut sum = 0f64;
        for r in range {
            for ((dv, &a), &b) in d
                .iter_mut()
                .zip(&want[r * k..(r + 1) * k])
                .zip(&got[r * k..(r + 1) * k])
            {
                *dv = b as f64 - a as f64;
            }
            for s in x[..n * k].chunks_exact(k) {
                let y: f64 = s.iter().zip(&d).map(|(&a, &b)| a as f64 * b).sum();
                sum += y * y;
            }
        }
        sum
    });
    parts.into_iter().sum()
}

/// Split `0..n` into one contiguous range per available core (at most) and run `f` on each
/// in a scoped thread; results in order.
pub(crate) fn parallel_chunks<T: Send>(
    n: usize,
    f: impl Fn(std::ops::Range<usize>) -> T + Sync,
) -> Vec<T> {
    let threads = std::thread::available_parallelism()
        .map(|t| t.get())
        .unwrap_or(1)
        .clamp(1, n.max(1));
    if threads == 1 {
        return vec![f(0..n)];
    }
    let per = n.div_ceil(threads);
    std::thread::scope(|sc| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let r = (t * per).min(n)..((t + 1) * per).min(n);
                let f = &f;
                sc.spawn(move || f(r))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("quantize worker panicked"))
            .collect()
    })
}
