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
//! | [`Method::Gptq`] | yes | Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, Q4_K, Q5_K, Q6_K, int* | blocks with error-compensated codes |
//! | [`Method::Imatrix`] | yes (or a stored importance matrix) | all | blocks whose scales fit the weights of large inputs best |
//! | [`Method::Awq`] | yes | all | blocks of `W diag(s)` **and** the scales `s` |
//! | [`Method::Absmean`] | no | TQ1_0, TQ2_0 | ternary blocks with scale mean \|w\| (BitNet b1.58) instead of ggml's max \|w\| |
//!
//! Pruning ([`prune`], [`quantize_pruned`]) comes before or with any of them: magnitude,
//! Wanda or SparseGPT choose which weights stay (unstructured, 2:4, 4:8), the method
//! quantizes the rest; GPTQ compensates the pruned weights' error too, and with SparseGPT
//! prunes and quantizes in one pass. The 2:4 sparse formats (`int4_g128_2of4`, ...) store
//! only the kept weights; without pruning first they keep each group's two largest
//! (magnitude), and GPTQ on them is SparseGPT.
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
pub mod imatrix;
pub mod mse;
pub mod prune;

pub use block::{BlockParams, BlockSpec, Grid, Prepared};
pub use calib::{Activations, Calibration};
pub use fake_quant::{FakeQuantConfig, GroupParams};
pub use imatrix::Imatrix;

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
    /// `block` columns; `act_order` visits columns by decreasing Hessian diagonal (and so
    /// implies `static_groups`: every block's parameters fixed from the original weights
    /// before the pass).
    Gptq {
        damp: f64,
        block: usize,
        act_order: bool,
        static_groups: bool,
    },
    /// AWQ with the scale exponent searched over `i / grid`, `i = 0..=grid`.
    Awq { grid: usize },
    /// Importance-weighted scale search (llama.cpp's "imatrix"): the MSE search of every
    /// block, each weight's error weighted by its input column's mean squared activation.
    Imatrix,
    /// The absmean rule of 1.58-bit models for the ternary formats (TQ1_0, TQ2_0): scale =
    /// mean |w| per block instead of ggml's max |w|.
    Absmean,
}

impl Method {
    /// GPTQ with the usual settings: damp 0.01, lazy batches of 128 columns.
    pub const GPTQ: Method = Method::Gptq {
        damp: 0.01,
        block: 128,
        act_order: false,
        static_groups: false,
    };
    /// AWQ with the usual grid of 20.
    pub const AWQ: Method = Method::Awq { grid: 20 };

    /// Whether the method needs calibration activations.
    pub fn needs_calibration(&self) -> bool {
        matches!(
            self,
            Method::Gptq { .. } | Method::Awq { .. } | Method::Imatrix
        )
    }

    /// The short name (`rtn`, `mse`, `gptq`, `awq`, `imatrix`, `absmean`).
    pub fn name(&self) -> &'static str {
        match self {
            Method::Rtn => "rtn",
            Method::Mse => "mse",
            Method::Gptq { .. } => "gptq",
            Method::Awq { .. } => "awq",
            Method::Imatrix => "imatrix",
            Method::Absmean => "absmean",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Method::Gptq {
                damp,
                block,
                act_order,
                static_groups,
            } => {
                write!(f, "gptq(damp={damp}, block={block}")?;
                if *act_order {
                    f.write_str(", act-order")?;
                }
                if *static_groups || *act_order {
                    f.write_str(", static-groups")?;
                }
                f.write_str(")")
            }
            Method::Awq { grid } => write!(f, "awq(grid={grid})"),
            m => f.write_str(m.name()),
        }
    }
}

impl FromStr for Method {
    type Err = Error;
    /// `rtn`, `mse`, `gptq`, `awq`, `imatrix` or `absmean` (with their usual settings).
    fn from_str(s: &str) -> Result<Method> {
        match s.to_ascii_lowercase().as_str() {
            "rtn" => Ok(Method::Rtn),
            "mse" => Ok(Method::Mse),
            "gptq" => Ok(Method::GPTQ),
            "awq" => Ok(Method::AWQ),
            "imatrix" => Ok(Method::Imatrix),
            "absmean" => Ok(Method::Absmean),
            _ => Err(Error::InvalidArgument(format!(
                "'{s}' is not a quantization method; choose one of: rtn, mse, gptq, awq, \
                 imatrix, absmean"
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

/// What the data-dependent methods know of a layer's inputs `X` (`n` x `k`). Each method
/// reads what it needs: GPTQ the Hessian, imatrix the importance, AWQ the activations.
#[derive(Clone, Debug, Default)]
pub struct InputStats {
    /// `2/n X^T X`, `k` x `k` row-major.
    pub hessian: Option<Vec<f64>>,
    /// Mean of `x_j^2` per input column (llama.cpp's importance matrix).
    pub importance: Option<Vec<f32>>,
    /// The activations themselves, or an evenly strided sample of them.
    pub activations: Option<Activations>,
}

impl InputStats {
    /// What `method` needs, computed from `x`.
    pub fn for_method(method: Method, x: &Activations) -> InputStats {
        match method {
            Method::Gptq { .. } => InputStats {
                hessian: Some(gptq::hessian(x)),
                importance: Some(importance(x.data(), x.k())),
                ..InputStats::default()
            },
            Method::Imatrix => InputStats {
                importance: Some(importance(x.data(), x.k())),
                ..InputStats::default()
            },
            Method::Awq { .. } => InputStats {
                activations: Some(x.clone()),
                ..InputStats::default()
            },
            _ => InputStats::default(),
        }
    }

    /// What `method` needs after pruning with `prune`, computed from `x`: the Hessian for
    /// SparseGPT and GPTQ, the importance for Wanda (and the grid search).
    pub fn for_pruning(method: Method, prune: Prune, x: &Activations) -> InputStats {
        let mut stats = InputStats::for_method(method, x);
        if prune.method == prune::PruneMethod::SparseGpt && stats.hessian.is_none() {
            stats.hessian = Some(gptq::hessian(x));
        }
        if stats.importance.is_none() {
            stats.importance = Some(importance(x.data(), x.k()));
        }
        stats
    }

    /// The inputs' width, if anything is known of them.
    fn k(&self) -> Option<usize> {
        self.importance
            .as_ref()
            .map(|v| v.len())
            .or(self.activations.as_ref().map(|a| a.k()))
            .or(self
                .hessian
                .as_ref()
                .map(|h| (h.len() as f64).sqrt().round() as usize))
    }
}

/// Mean `x_j^2` per column of the rows `x` (each `k` wide).
pub fn importance(x: &[f32], k: usize) -> Vec<f32> {
    let n = x.len() / k;
    let mut sum = vec![0f64; k];
    for row in x.chunks_exact(k) {
        for (s, &v) in sum.iter_mut().zip(row) {
            *s += v as f64 * v as f64;
        }
    }
    sum.iter().map(|&s| (s / n.max(1) as f64) as f32).collect()
}

/// Quantize `rows` x `k` f32 weights (row-major) to `format` with `method`.
///
/// `calib` is the layer's input (`samples` x `k`); GPTQ, AWQ and imatrix need it
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
    if let Some(x) = calib {
        if x.k() != k {
            return Err(Error::Calibration(format!(
                "activations have K = {}, but the weight's rows have length {k}",
                x.k()
            )));
        }
    }
    let stats = calib.map_or_else(InputStats::default, |x| InputStats::for_method(method, x));
    quantize_with(format, method, weights, rows, k, &stats)
}

/// [`quantize`] with what is known of the inputs already computed (a model's calibration
/// pass shares one Hessian between the layers that read the same input).
pub fn quantize_with(
    format: Format,
    method: Method,
    weights: &[f32],
    rows: usize,
    k: usize,
    stats: &InputStats,
) -> Result<Quantized> {
    check_inputs(format, weights, (rows, k), stats)?;
    if let Format::Sparse24(_) = format {
        // The 2:4 formats hold two of every four weights: GPTQ on them is SparseGPT (prune
        // and quantize in one pass), the searches see the weights pruned by magnitude (the
        // format's reference rule; RTN is that rule already).
        match method {
            Method::Gptq { .. } => {
                let prune = Prune {
                    pattern: prune::Pattern::TWO_FOUR,
                    method: prune::PruneMethod::SparseGpt,
                };
                return quantize_pruned(format, method, prune, weights, rows, k, stats);
            }
            Method::Mse | Method::Imatrix | Method::Awq { .. } => {
                // The format's own rule, so that every method keeps the weights RTN does.
                let mut pruned = weights.to_vec();
                crate::format::SparseFormat::prune(&mut pruned);
                return quantize_dense(format, method, &pruned, rows, k, stats);
            }
            Method::Rtn | Method::Absmean => {}
        }
    }
    quantize_dense(format, method, weights, rows, k, stats)
}

/// [`quantize_with`] once the weights are what the format should store.
fn quantize_dense(
    format: Format,
    method: Method,
    weights: &[f32],
    rows: usize,
    k: usize,
    stats: &InputStats,
) -> Result<Quantized> {
    let check_finite = |m: &Method| check_finite(weights, k, m.name());
    let missing = |m: &Method| Error::MissingCalibration {
        method: m.name().to_string(),
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
            let bytes = crate::format::ternary_absmean(tq1, weights);
            Ok(done(QuantizedTensor::from_bytes(format, rows, k, bytes)?))
        }
        Method::Mse => Ok(done(search_blocks(format, weights, rows, k, None)?)),
        Method::Imatrix => {
            check_finite(&method)?;
            let imp = stats
                .importance
                .as_deref()
                .ok_or_else(|| missing(&method))?;
            Ok(done(search_blocks(format, weights, rows, k, Some(imp))?))
        }
        Method::Gptq {
            damp,
            block,
            act_order,
            static_groups,
        } => {
            if !gptq_walks(format) {
                return Err(no_gptq_grid(format));
            }
            check_finite(&method)?;
            let h = stats.hessian.as_ref().ok_or_else(|| missing(&method))?;
            if !(damp.is_finite() && damp >= 0.0) {
                return Err(Error::InvalidArgument(format!(
                    "gptq damping must be finite and >= 0, got {damp}"
                )));
            }
            let perm = act_order.then(|| gptq::act_order(h, k));
            let fixed = act_order || static_groups;
            let u = gptq::prepare_hessian(h.clone(), k, damp, perm.as_deref())?;
            let walk = GptqWalk {
                w: weights,
                rows,
                k,
                u: &u,
                block,
                perm: perm.as_deref(),
                fixed,
            };
            let data = with_grid(format, stats.importance.as_deref(), walk)?;
            Ok(done(QuantizedTensor::from_bytes(format, rows, k, data)?))
        }
        Method::Awq { grid } => {
            check_finite(&method)?;
            let x = stats.activations.as_ref().ok_or_else(|| missing(&method))?;
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

/// Pruning before (or with) quantization: which weights stay and how they are chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prune {
    pub pattern: prune::Pattern,
    pub method: prune::PruneMethod,
}

impl std::fmt::Display for Prune {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.pattern)
    }
}

/// Prune `rows` x `k` weights with `prune`, then quantize what stays to `format` with
/// `method` (pruned weights stay at the code nearest zero: exactly zero for the symmetric
/// formats and the 2:4 ones, which store only the kept weights).
///
/// - magnitude / Wanda choose the mask (Wanda weighs |w| by each input column's norm, from
///   the importance or the Hessian's diagonal); GPTQ then quantizes with the mask fixed,
///   compensating the pruned weights' error too; other methods quantize the masked weights.
/// - SparseGPT needs the Hessian: with GPTQ it prunes and quantizes in one pass, with any
///   other method it prunes (updating the kept weights) and the method quantizes the result.
///
/// A 2:4 format takes only the 2:4 pattern. GPTQ's act-order is not supported here.
pub fn quantize_pruned(
    format: Format,
    method: Method,
    prune: Prune,
    weights: &[f32],
    rows: usize,
    k: usize,
    stats: &InputStats,
) -> Result<Quantized> {
    use prune::{Pattern, PruneMethod};
    check_inputs(format, weights, (rows, k), stats)?;
    prune.pattern.check_k(k)?;
    if let Format::Sparse24(_) = format {
        if prune.pattern != Pattern::TWO_FOUR {
            return Err(Error::InvalidArgument(format!(
                "{format} stores 2:4 sparsity; prune with 2:4, not {}",
                prune.pattern
            )));
        }
    }
    check_finite(weights, k, "pruning")?;
    let (damp, block) = match method {
        Method::Gptq {
            act_order,
            static_groups,
            ..
        } if act_order || static_groups => {
            return Err(Error::InvalidArgument(
                "gptq's act-order and static groups are not supported together with pruning \
                 (the mask must be known before a block's scales are chosen)"
                    .into(),
            ))
        }
        Method::Gptq { damp, block, .. } => (damp, block),
        _ => (0.01, 128),
    };
    if !(damp.is_finite() && damp >= 0.0) {
        return Err(Error::InvalidArgument(format!(
            "gptq damping must be finite and >= 0, got {damp}"
        )));
    }
    let gptq = matches!(method, Method::Gptq { .. });
    let missing = |what: &str| Error::MissingCalibration {
        method: what.to_string(),
    };
    let u = if gptq || prune.method == PruneMethod::SparseGpt {
        let what = if gptq { "gptq" } else { "sparsegpt" };
        let h = stats.hessian.as_ref().ok_or_else(|| missing(what))?;
        if h.len() != k * k {
            return Err(Error::Calibration(format!(
                "the Hessian is {} values; K = {k} needs {}",
                h.len(),
                k * k
            )));
        }
        Some(gptq::prepare_hessian(h.clone(), k, damp, None)?)
    } else {
        None
    };
    let importance = stats.importance.as_deref();
    let done = |tensor| Quantized {
        tensor,
        method,
        awq_scales: None,
        awq_alpha: None,
    };
    match (prune.method, u) {
        (PruneMethod::SparseGpt, Some(u)) if gptq => {
            let walk = SparseGptWalk {
                w: weights,
                rows,
                k,
                u: &u,
                pattern: prune.pattern,
                block,
            };
            let bytes = with_grid(format, importance, walk)?;
            Ok(done(QuantizedTensor::from_bytes(format, rows, k, bytes)?))
        }
        (PruneMethod::SparseGpt, Some(u)) => {
            let (pruned, _) = prune::sparsegpt(weights, rows, k, &u, prune.pattern, block)?;
            quantize_with(format, method, &pruned, rows, k, stats)
        }
        (PruneMethod::SparseGpt, None) => Err(missing("sparsegpt")),
        (m, u) => {
            let norms = match m {
                PruneMethod::Wanda => Some(column_norms(stats, k).ok_or_else(|| missing("wanda"))?),
                _ => None,
            };
            let mask = prune::mask(weights, rows, k, prune.pattern, norms.as_deref())?;
            match u {
                Some(u) => {
                    let walk = MaskedWalk {
                        w: weights,
                        rows,
                        k,
                        u: &u,
                        mask: &mask,
                        block,
                    };
                    let bytes = with_grid(format, importance, walk)?;
                    Ok(done(QuantizedTensor::from_bytes(format, rows, k, bytes)?))
                }
                None => {
                    let pruned = prune::apply_mask(weights, &mask)?;
                    quantize_with(format, method, &pruned, rows, k, stats)
                }
            }
        }
    }
}

/// The weights fit the format and the shape, and what is known of the inputs has their
/// width.
fn check_inputs(
    format: Format,
    weights: &[f32],
    (rows, k): (usize, usize),
    stats: &InputStats,
) -> Result<()> {
    format.check_k(k)?;
    check_len("weights", weights.len(), rows, k)?;
    match stats.k() {
        Some(sk) if sk != k => Err(Error::Calibration(format!(
            "activations have K = {sk}, but the weight's rows have length {k}"
        ))),
        _ => Ok(()),
    }
}

/// An [`Error::InvalidArgument`] naming the first weight (of rows `k` wide) that is not
/// finite, which `what` cannot take.
pub(crate) fn check_finite(weights: &[f32], k: usize, what: &str) -> Result<()> {
    match weights.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(Error::InvalidArgument(format!(
            "weight [{}, {}] is {}; {what} needs finite weights",
            i / k.max(1),
            i % k.max(1),
            weights[i]
        ))),
        None => Ok(()),
    }
}

/// Each input column's norm (up to a common factor, which a mask does not see): the square
/// root of its mean squared value, or of the Hessian's diagonal.
fn column_norms(stats: &InputStats, k: usize) -> Option<Vec<f32>> {
    if let Some(imp) = &stats.importance {
        return Some(imp.iter().map(|v| v.max(0.0).sqrt()).collect());
    }
    let h = stats.hessian.as_ref()?;
    Some(
        (0..k)
            .map(|j| h[j * k + j].max(0.0).sqrt() as f32)
            .collect(),
    )
}

/// A walk over a format's grid (GPTQ's [`gptq::Grid`]), chosen by [`with_grid`].
trait GridWalk {
    fn walk<G: gptq::Grid>(self, grid: &G) -> Result<Vec<u8>>;
}

/// Whether GPTQ (and SparseGPT) can walk `format`'s blocks: a [`BlockSpec`] or a K-quant
/// grid.
pub fn gptq_walks(format: Format) -> bool {
    BlockSpec::new(format).is_some() || gptq::KQuantGrid::new(format).is_some()
}

fn no_gptq_grid(format: Format) -> Error {
    Error::UnsupportedFormat(format!(
        "gptq needs a format whose blocks it can walk: q4_0, q4_1, q5_0, q5_1, q8_0, iq4_nl, \
         q4_k, q5_k, q6_k, int4_*/int8_*, the 2:4 formats; {format} is not one"
    ))
}

/// The grid GPTQ walks for `format`, given to `f`: block parameters by the
/// importance-weighted search where the importance is known (SmolLM2 q4_0: perplexity 22.17
/// -> 20.65 over the reference rule's).
fn with_grid(format: Format, importance: Option<&[f32]>, f: impl GridWalk) -> Result<Vec<u8>> {
    match (BlockSpec::new(format), gptq::KQuantGrid::new(format)) {
        (Some(spec), _) => match importance {
            Some(importance) => f.walk(&gptq::SearchedSpec { spec, importance }),
            None => f.walk(&spec),
        },
        (None, Some(kq)) => f.walk(&kq),
        (None, None) => Err(no_gptq_grid(format)),
    }
}

/// GPTQ (act-order and static groups as [`Method::Gptq`] says).
struct GptqWalk<'a> {
    w: &'a [f32],
    rows: usize,
    k: usize,
    u: &'a [f64],
    block: usize,
    perm: Option<&'a [usize]>,
    fixed: bool,
}

impl GridWalk for GptqWalk<'_> {
    fn walk<G: gptq::Grid>(self, grid: &G) -> Result<Vec<u8>> {
        let params = self
            .fixed
            .then(|| gptq::static_params(grid, self.w, self.k));
        let order = gptq::Order {
            perm: self.perm,
            static_params: params.as_deref(),
        };
        Ok(gptq::quantize(
            grid, self.w, self.rows, self.k, self.u, self.block, order,
        ))
    }
}

struct SparseGptWalk<'a> {
    w: &'a [f32],
    rows: usize,
    k: usize,
    u: &'a [f64],
    pattern: prune::Pattern,
    block: usize,
}

impl GridWalk for SparseGptWalk<'_> {
    fn walk<G: gptq::Grid>(self, grid: &G) -> Result<Vec<u8>> {
        let (bytes, _) = prune::sparsegpt_quantize(
            grid,
            self.w,
            self.rows,
            self.k,
            self.u,
            self.pattern,
            self.block,
        )?;
        Ok(bytes)
    }
}

struct MaskedWalk<'a> {
    w: &'a [f32],
    rows: usize,
    k: usize,
    u: &'a [f64],
    mask: &'a [bool],
    block: usize,
}

impl GridWalk for MaskedWalk<'_> {
    fn walk<G: gptq::Grid>(self, grid: &G) -> Result<Vec<u8>> {
        prune::gptq_masked(
            grid, self.w, self.rows, self.k, self.u, self.mask, self.block,
        )
    }
}

/// The MSE search of every block (weighted by llama.cpp's importance weights of each row
/// where `importance` is given).
fn search_blocks(
    format: Format,
    weights: &[f32],
    rows: usize,
    k: usize,
    importance: Option<&[f32]>,
) -> Result<QuantizedTensor> {
    let c = format.codec();
    let (bv, bb) = (c.block_values(), c.block_bytes());
    let spec = BlockSpec::new(format);
    let parts = parallel_chunks(rows, |range| {
        let mut out = vec![0u8; range.len() * (k / bv) * bb];
        for (orow, r) in out.chunks_exact_mut((k / bv) * bb).zip(range.clone()) {
            let row = &weights[r * k..(r + 1) * k];
            let w = importance.map(|imp| mse::importance_weights(imp, row));
            for (b, ob) in orow.chunks_exact_mut(bb).enumerate() {
                let x = &row[b * bv..(b + 1) * bv];
                let wb = w.as_ref().map(|w| &w[b * bv..(b + 1) * bv]);
                match &spec {
                    Some(spec) => spec.encode(x, mse::search_weighted(spec, x, wb), ob),
                    None => mse::clip_search_codec(c, x, wb, ob),
                }
            }
        }
        out
    });
    QuantizedTensor::from_bytes(format, rows, k, parts.concat())
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
