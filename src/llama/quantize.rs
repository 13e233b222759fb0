//! Whole-model quantization: every matrix of a llama model quantized by a method on the
//! inputs it sees in the model, collected by the calibration pass
//! ([`super::calibrate`]).
//!
//! The pass runs the blocks in order; inside each block, a layer is quantized right before
//! it runs, on the inputs that the already-quantized layers before it produced (GPTQ's
//! sequential order), and the block continues with the quantized weights. So every
//! method calibrates on what the quantized model will really feed each layer.
//!
//! Per method:
//! - `rtn`, `mse`: no data needed; with calibration the pass still runs to report each
//!   layer's output error.
//! - `imatrix`: the MSE search weighted by each column's mean squared input: from a stored
//!   importance matrix ([`Options::imatrix`]) or from the pass.
//! - `gptq`: the Hessian `2/n X^T X` of each of a block's four inputs, accumulated over all
//!   calibration tokens (never the activations themselves), shared by the layers that read
//!   the input. Formats without a grid GPTQ can walk (Q2_K, MXFP4, NF4, ternary, 1-bit)
//!   fall back to `imatrix` on the same inputs.
//! - `awq`: per block, a first look at the float block's inputs chooses the scales of four
//!   groups, which are folded into the model so that the file runs unchanged anywhere:
//!   `attn_norm -> Q, K, V` and `ffn_norm -> gate, up` (the norm's weight divided by `s`),
//!   `V -> attn_output` (V's rows divided by `s`; with grouped-query attention one scale per
//!   key/value channel, shared by the query heads of its group) and `up -> down` (up's rows
//!   divided by `s`). The scaled layers are then quantized by RTN, as the search measured.
//!
//! The token embedding and the output projection: an untied `output.weight` is a layer
//! like the others (its input is the final norm; AWQ folds into `output_norm`). A tied
//! embedding serves as the lookup table too, which error compensation would distort, so
//! GPTQ and AWQ quantize it with `imatrix` on the output projection's inputs (what
//! llama.cpp's importance matrices do for it), and an untied token embedding, which has no
//! inputs, with `mse` (imatrix) or RTN (the others).
//!
//! A tensor already stored in its target format and untouched by folding is copied as it
//! is: its blocks are already on the format's grid, and requantizing could only lose.

use super::calibrate::{BlockF32, BlockHooks, CalibTokens, CalibrationPass, Input, Linear};
use super::weights::Weights;
use crate::io::gguf::StoredTensor;
use crate::linalg::{add_gram, matmul_nt, View};
use crate::quantize::prune::PruneMethod;
use crate::quantize::{self, awq, Imatrix, InputStats, Method, Prune};
use crate::{Error, Format, QuantizedTensor, Result};
use std::collections::BTreeMap;

/// Rows of each input kept (evenly strided) for AWQ's search and the reported output
/// errors.
pub const SAMPLE_ROWS: usize = 512;

/// How to quantize a model.
#[derive(Clone, Debug)]
pub struct Options {
    /// Format of every matrix not named in `formats`.
    pub format: Format,
    /// Per-matrix formats by GGUF name (a mixed-precision plan, see [`super::mixed`]).
    pub formats: BTreeMap<String, Format>,
    pub method: Method,
    /// A stored importance matrix for [`Method::Imatrix`]; without one the pass computes it.
    pub imatrix: Option<Imatrix>,
    /// Prune every block matrix before (or, with GPTQ, while) quantizing it
    /// ([`quantize::quantize_pruned`]); the token embedding and the output head stay dense.
    pub prune: Option<Prune>,
}

impl Options {
    pub fn new(format: Format, method: Method) -> Options {
        Options {
            format,
            formats: BTreeMap::new(),
            method,
            imatrix: None,
            prune: None,
        }
    }

    /// The format of matrix `name`. With a 2:4 sparse format, the token embedding and the
    /// output head take the dense int format of the same bits and group (pruning the lookup
    /// table and the logits' projection costs far more than the bits it saves, as SparseGPT
    /// found too) unless `formats` names them.
    pub fn format_of(&self, name: &str) -> Format {
        if let Some(&f) = self.formats.get(name) {
            return f;
        }
        if is_head(name) {
            head_format(self.format)
        } else {
            self.format
        }
    }

    /// What needs the pass, for messages: the pruning method where it does, else the method.
    pub fn pass_reason(&self) -> String {
        match self.prune {
            Some(p) if p.method != PruneMethod::Magnitude => format!("{} pruning", p.method),
            _ => self.method.name().to_string(),
        }
    }

    /// Whether the method needs the calibration pass (a stored imatrix makes it optional).
    pub fn needs_pass(&self) -> bool {
        if self
            .prune
            .is_some_and(|p| p.method != PruneMethod::Magnitude)
        {
            return true;
        }
        match self.method {
            Method::Imatrix => self.imatrix.is_none(),
            m => m.needs_calibration(),
        }
    }
}

/// What happened to one matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorReport {
    pub name: String,
    pub rows: usize,
    pub k: usize,
    pub format: Format,
    /// The method used (`gptq`, `imatrix`, ...), `copied`, or a fallback with its reason.
    pub how: String,
    /// `sum (w' - w)^2 / sum w^2` against the weights it replaced (for AWQ's scaled layers,
    /// the scaled weights).
    pub weight_nmse: f64,
    /// `||X (W' - W)^T||^2 / ||X W^T||^2` on up to [`SAMPLE_ROWS`] of the layer's
    /// calibration inputs, where the pass ran.
    pub output_nmse: Option<f64>,
}

/// Progress of [`quantize_model`].
#[derive(Clone, Copy, Debug)]
pub enum Progress<'a> {
    /// A block is done (`done` of `total` steps: the blocks, then the output head).
    Step {
        done: usize,
        total: usize,
    },
    Tensor(&'a TensorReport),
}

/// A quantized model.
#[derive(Clone, Debug)]
pub struct QuantizedModel {
    /// Every tensor of the model by GGUF name (norms as f32, changed where AWQ folded
    /// scales into them).
    pub tensors: BTreeMap<String, StoredTensor>,
    /// One per matrix, in the order they were quantized.
    pub reports: Vec<TensorReport>,
    /// The importance of every matrix's inputs as the pass saw them (`None` without one).
    pub imatrix: Option<Imatrix>,
}

/// Quantize every matrix of `w`; `calib` runs the calibration pass (required by the methods
/// that need data, see [`Options::needs_pass`]).
pub fn quantize_model(
    w: &Weights,
    calib: Option<&CalibTokens>,
    opts: &Options,
    progress: &mut dyn FnMut(Progress),
) -> Result<QuantizedModel> {
    if opts.needs_pass() && calib.is_none() {
        return Err(Error::MissingCalibration {
            method: opts.pass_reason(),
        });
    }
    for name in opts.formats.keys() {
        if !matrix_names(w).contains(name) {
            return Err(Error::InvalidArgument(format!(
                "the plan names '{name}', which is not a matrix of this model"
            )));
        }
    }
    let c = &w.config;
    let mut out = QuantizedModel {
        tensors: BTreeMap::new(),
        reports: Vec::new(),
        imatrix: None,
    };
    let total = c.n_layers + 1;
    let Some(calib) = calib else {
        // No pass: each matrix on its own (stored importance, or none).
        for (l, lw) in w.layers.iter().enumerate() {
            for lin in Linear::ALL {
                let q = block_matrix(w, l, lin);
                let name = lin.tensor_name(l);
                let stats = stored_stats(opts, &name, q.k())?;
                let current = q.dequantize();
                let job = Job::new(&name, q, &current, opts, true);
                let r = job.run(opts.method, &stats, None)?;
                out.push(r, progress);
            }
            out.norms(l, &lw.attn_norm, &lw.ffn_norm);
            progress(Progress::Step { done: l + 1, total });
        }
        head(w, opts, None, &mut out, progress)?;
        progress(Progress::Step { done: total, total });
        return Ok(out);
    };
    let mut pass = CalibrationPass::new(w, calib)?;
    let mut imatrix = Imatrix::new();
    imatrix.chunk_count = calib.sequences().len() as u32;
    imatrix.chunk_size = calib.sequences().iter().map(|s| s.len()).max().unwrap_or(0) as u32;
    for l in 0..c.n_layers {
        let mut block = BlockF32::from_weights(w, l);
        let mut folded = [false; 7];
        if matches!(opts.method, Method::Awq { .. }) {
            awq_fold_block(&mut pass, &mut block, opts, l, &mut folded)?;
        }
        let mut hooks = Quantizer {
            w,
            opts,
            layer: l,
            folded,
            imatrix: &mut imatrix,
            out: &mut out,
            progress,
        };
        pass.run_block(&mut block, &mut hooks, true)?;
        out.norms(l, &block.attn_norm, &block.ffn_norm);
        progress(Progress::Step { done: l + 1, total });
    }
    let x = pass.head_input(&w.output_norm);
    let head_name = if w.output.is_some() {
        "output.weight"
    } else {
        "token_embd.weight"
    };
    imatrix.add(head_name, &x, c.d_model);
    head(w, opts, Some((&x, &imatrix)), &mut out, progress)?;
    progress(Progress::Step { done: total, total });
    out.imatrix = Some(imatrix);
    Ok(out)
}

impl QuantizedModel {
    fn push(&mut self, done: Done, progress: &mut dyn FnMut(Progress)) {
        progress(Progress::Tensor(&done.report));
        self.reports.push(done.report);
        self.tensors.insert(done.name, done.tensor);
    }

    fn norms(&mut self, l: usize, attn: &[f32], ffn: &[f32]) {
        for (role, v) in [("attn_norm", attn), ("ffn_norm", ffn)] {
            self.tensors.insert(
                format!("blk.{l}.{role}.weight"),
                StoredTensor::Float {
                    shape: vec![v.len()],
                    data: v.to_vec(),
                },
            );
        }
    }

    /// Bits of all tensors' data over the weights they hold.
    pub fn bits_per_weight(&self) -> f64 {
        tensors_bits_per_weight(self.tensors.values())
    }
}

/// Bits of data over values held, for a set of tensors (f32 tensors at 32 bits).
pub fn tensors_bits_per_weight<'a>(tensors: impl Iterator<Item = &'a StoredTensor>) -> f64 {
    let (mut bits, mut values) = (0f64, 0f64);
    for t in tensors {
        match t {
            StoredTensor::Float { data, .. } => {
                bits += 32.0 * data.len() as f64;
                values += data.len() as f64;
            }
            StoredTensor::Quantized(q) => {
                bits += 8.0 * q.bytes().len() as f64;
                values += (q.rows() * q.k()) as f64;
            }
        }
    }
    bits / values.max(1.0)
}

/// Whether `name` is the token embedding or the output head (never pruned; dense beside a
/// 2:4 format).
pub fn is_head(name: &str) -> bool {
    matches!(name, "token_embd.weight" | "output.weight")
}

/// The format the token embedding and output head take where the model's format is
/// `format`: itself, or for a 2:4 format the dense int format of the same bits and group.
pub fn head_format(format: Format) -> Format {
    match format {
        Format::Sparse24(f) => Format::Int(f.dense()),
        f => f,
    }
}

/// Every matrix name of the model, in file order.
pub fn matrix_names(w: &Weights) -> Vec<String> {
    let mut v = vec!["token_embd.weight".to_string()];
    for l in 0..w.layers.len() {
        v.extend(Linear::ALL.iter().map(|lin| lin.tensor_name(l)));
    }
    if w.output.is_some() {
        v.push("output.weight".to_string());
    }
    v
}

/// The stats a stored importance matrix gives matrix `name` (nothing else without a pass).
fn stored_stats(opts: &Options, name: &str, k: usize) -> Result<InputStats> {
    let importance = match (&opts.imatrix, opts.method) {
        (Some(m), Method::Imatrix) => m.importance(name, k)?,
        _ => None,
    };
    Ok(InputStats {
        importance,
        ..InputStats::default()
    })
}

/// One matrix to quantize.
struct Job<'a> {
    name: &'a str,
    source: &'a QuantizedTensor,
    /// The weights as the block holds them now (AWQ may have scaled them).
    current: &'a [f32],
    format: Format,
    /// False when folding changed the weights: the source can then not be copied.
    pristine: bool,
    /// Pruning (block matrices only).
    prune: Option<Prune>,
}

impl<'a> Job<'a> {
    fn new(
        name: &'a str,
        source: &'a QuantizedTensor,
        current: &'a [f32],
        opts: &Options,
        pristine: bool,
    ) -> Job<'a> {
        Job {
            name,
            source,
            current,
            format: opts.format_of(name),
            pristine,
            prune: opts.prune.filter(|_| !is_head(name)),
        }
    }

    /// Quantize with `method` where the stats allow it (else the documented fallback), and
    /// report; `sample` (rows of the layer's inputs) gives the output error.
    fn run(&self, method: Method, stats: &InputStats, sample: Option<&[f32]>) -> Result<Done> {
        let (rows, k) = (self.source.rows(), self.source.k());
        if let Err(e) = self.format.check_k(k) {
            // As `quantize` does for files: a matrix whose rows do not fit stays f32.
            let report = TensorReport {
                name: self.name.to_string(),
                rows,
                k,
                format: Format::F32,
                how: format!("kept as f32: {e}"),
                weight_nmse: 0.0,
                output_nmse: sample.map(|_| 0.0),
            };
            let t = StoredTensor::Float {
                shape: vec![rows, k],
                data: self.current.to_vec(),
            };
            return Ok(Done {
                name: self.name.to_string(),
                tensor: t,
                values: self.current.to_vec(),
                report,
            });
        }
        let (q, how) = if let Some(prune) = self.prune {
            // Pruning replaces a GPTQ fallback's reasons: GPTQ needs the Hessian the pass
            // gives, SparseGPT too.
            let (m, how) = effective_method(method, self.format, stats);
            let q = quantize::quantize_pruned(self.format, m, prune, self.current, rows, k, stats)
                .map_err(|e| at_tensor(e, self.name))?;
            (q.tensor, format!("{prune} + {how}"))
        } else if self.pristine && self.source.format() == self.format {
            (self.source.clone(), "copied".to_string())
        } else {
            let (m, how) = effective_method(method, self.format, stats);
            let q = quantize::quantize_with(self.format, m, self.current, rows, k, stats)
                .map_err(|e| at_tensor(e, self.name))?;
            (q.tensor, how)
        };
        let deq = q.dequantize();
        let report = TensorReport {
            name: self.name.to_string(),
            rows,
            k,
            format: self.format,
            how,
            weight_nmse: quantize::weight_nmse(self.current, &deq),
            output_nmse: sample.map(|x| sample_output_nmse(x, k, self.current, &deq, rows)),
        };
        Ok(Done {
            name: self.name.to_string(),
            tensor: StoredTensor::Quantized(q),
            values: deq,
            report,
        })
    }
}

/// A matrix done: as stored, the values it stands for, and its report.
struct Done {
    name: String,
    tensor: StoredTensor,
    values: Vec<f32>,
    report: TensorReport,
}

/// The method a matrix really gets, and how to say it.
fn effective_method(method: Method, format: Format, stats: &InputStats) -> (Method, String) {
    let has_grid = quantize::gptq_walks(format);
    match method {
        Method::Gptq { .. } if stats.hessian.is_none() => {
            (Method::Rtn, "rtn (no inputs for gptq)".into())
        }
        Method::Gptq { .. } if !has_grid => {
            if stats.importance.is_some() {
                (
                    Method::Imatrix,
                    format!("imatrix (gptq has no grid for {format})"),
                )
            } else {
                (Method::Rtn, format!("rtn (gptq has no grid for {format})"))
            }
        }
        Method::Imatrix if stats.importance.is_none() => {
            (Method::Mse, "mse (no importance for this matrix)".into())
        }
        Method::Awq { .. } => (Method::Rtn, "rtn (awq scales folded)".into()),
        Method::Absmean if !matches!(format, Format::TQ1_0 | Format::TQ2_0) => (
            Method::Rtn,
            format!("rtn (absmean is for tq1_0/tq2_0, not {format})"),
        ),
        m => (m, m.name().to_string()),
    }
}

fn at_tensor(e: Error, name: &str) -> Error {
    match e {
        Error::Calibration(m) => Error::Calibration(format!("{name}: {m}")),
        Error::InvalidArgument(m) => Error::InvalidArgument(format!("{name}: {m}")),
        other => other,
    }
}

/// `||X (got - want)^T||^2 / ||X want^T||^2` for the sample rows `x` (`k` wide).
fn sample_output_nmse(x: &[f32], k: usize, want: &[f32], got: &[f32], rows: usize) -> f64 {
    let n = x.len() / k;
    let xv = View::new(x, n, k);
    let yw = matmul_nt(xv, View::new(want, rows, k));
    let yg = matmul_nt(xv, View::new(got, rows, k));
    let (mut num, mut den) = (0f64, 0f64);
    for (&a, &b) in yw.iter().zip(&yg) {
        num += (b as f64 - a as f64).powi(2);
        den += (a as f64).powi(2);
    }
    if den > 0.0 {
        num / den
    } else if num == 0.0 {
        0.0
    } else {
        f64::INFINITY
    }
}

/// Up to `max` evenly strided rows of `x` (`k` wide).
pub(crate) fn sample_rows(x: &[f32], k: usize, max: usize) -> Vec<f32> {
    let n = x.len() / k;
    if n <= max {
        return x.to_vec();
    }
    let mut out = Vec::with_capacity(max * k);
    for i in 0..max {
        let r = i * n / max;
        out.extend_from_slice(&x[r * k..(r + 1) * k]);
    }
    out
}

/// `2/n X^T X` of the rows `x`.
pub(crate) fn hessian_of(x: &[f32], k: usize) -> Vec<f64> {
    let n = x.len() / k;
    let mut h = vec![0f64; k * k];
    add_gram(&mut h, x, n, k);
    let scale = 2.0 / n.max(1) as f64;
    for v in &mut h {
        *v *= scale;
    }
    h
}

/// The hooks of the quantizing pass over one block.
struct Quantizer<'a, 'p> {
    w: &'a Weights,
    opts: &'a Options,
    layer: usize,
    /// Layers whose weights folding changed.
    folded: [bool; 7],
    imatrix: &'a mut Imatrix,
    out: &'a mut QuantizedModel,
    progress: &'a mut (dyn FnMut(Progress) + 'p),
}

impl BlockHooks for Quantizer<'_, '_> {
    fn input(&mut self, input: Input, x: &[f32], block: &mut BlockF32) -> Result<()> {
        let linears = input.linears();
        let k = block.linear(linears[0]).k;
        for lin in linears {
            self.imatrix.add(&lin.tensor_name(self.layer), x, k);
        }
        let method = self.opts.method;
        let sparsegpt = self
            .opts
            .prune
            .is_some_and(|p| p.method == PruneMethod::SparseGpt);
        let wants_gptq = matches!(method, Method::Gptq { .. }) || sparsegpt;
        let mut stats = InputStats {
            hessian: wants_gptq.then(|| hessian_of(x, k)),
            ..InputStats::default()
        };
        let sample = sample_rows(x, k, SAMPLE_ROWS);
        for &lin in linears {
            let name = lin.tensor_name(self.layer);
            stats.importance = match &self.opts.imatrix {
                Some(m) => m.importance(&name, k)?,
                None => None,
            }
            .or_else(|| self.imatrix.get(&name).map(|e| e.importance()));
            let current = block.linear(lin).data.clone();
            let job = Job::new(
                &name,
                block_matrix(self.w, self.layer, lin),
                &current,
                self.opts,
                !self.folded[lin as usize],
            );
            let mut done = job.run(method, &stats, Some(&sample))?;
            block.linear_mut(lin).data = std::mem::take(&mut done.values);
            self.out.push(done, self.progress);
        }
        Ok(())
    }
}

/// The output projection (and an untied token embedding), after the pass: `pass` holds the
/// head's inputs and the pass's importance matrix.
fn head(
    w: &Weights,
    opts: &Options,
    pass: Option<(&[f32], &Imatrix)>,
    out: &mut QuantizedModel,
    progress: &mut dyn FnMut(Progress),
) -> Result<()> {
    let d = w.config.d_model;
    let mut output_norm = w.output_norm.clone();
    let importance = |name: &str| -> Result<Option<Vec<f32>>> {
        if let Some(m) = &opts.imatrix {
            if let Some(v) = m.importance(name, d)? {
                return Ok(Some(v));
            }
        }
        Ok(pass.and_then(|(_, m)| m.get(name).map(|e| e.importance())))
    };
    let sample = pass.map(|(x, _)| sample_rows(x, d, SAMPLE_ROWS));
    match &w.output {
        Some(o) => {
            let name = "output.weight";
            let mut current = o.dequantize();
            let mut method = opts.method;
            let mut pristine = true;
            let mut sample = sample;
            if let (Method::Awq { grid }, Some((x, _)), Some(s)) =
                (opts.method, pass, sample.as_mut())
            {
                let f = [opts.format_of(name)];
                let m = awq::mean_abs(x, d);
                let scales = awq_search(&f, &[&current], s, &m, d, grid, None)?;
                for (g, &sv) in output_norm.iter_mut().zip(&scales) {
                    *g /= sv;
                }
                scale_columns(&mut current, &scales);
                scale_rows_inv(s, &scales, d);
                pristine = false;
                method = Method::Rtn;
            }
            let stats = InputStats {
                hessian: match (method, pass) {
                    (Method::Gptq { .. }, Some((x, _))) => Some(hessian_of(x, d)),
                    _ => None,
                },
                importance: importance(name)?,
                activations: None,
            };
            let job = Job::new(name, o, &current, opts, pristine);
            out.push(job.run(method, &stats, sample.as_deref())?, progress);
            // The untied token embedding has no inputs: MSE search (imatrix) or RTN.
            let name = "token_embd.weight";
            let e = &w.token_embd;
            let m = match opts.method {
                Method::Imatrix | Method::Mse => Method::Mse,
                Method::Absmean => Method::Absmean,
                _ => Method::Rtn,
            };
            let current = e.dequantize();
            let job = Job::new(name, e, &current, opts, true);
            out.push(job.run(m, &InputStats::default(), None)?, progress);
        }
        None => {
            // Tied: the lookup table too, so no error compensation; imatrix-weighted
            // scales for the calibrated methods (where the pass or a stored matrix has the
            // head's inputs), else the method's calibration-free counterpart.
            let name = "token_embd.weight";
            let e = &w.token_embd;
            let imp = importance(name)?;
            let m = match (opts.method, &imp) {
                (Method::Gptq { .. } | Method::Awq { .. } | Method::Imatrix, Some(_)) => {
                    Method::Imatrix
                }
                (Method::Gptq { .. } | Method::Awq { .. }, None) => Method::Rtn,
                (m, _) => m,
            };
            let stats = InputStats {
                importance: imp,
                ..InputStats::default()
            };
            let current = e.dequantize();
            let job = Job::new(name, e, &current, opts, true);
            let mut done = job.run(m, &stats, sample.as_deref())?;
            if m != opts.method && done.report.how == m.name() {
                done.report.how = format!("{} (tied embedding: no error compensation)", m.name());
            }
            out.push(done, progress);
        }
    }
    out.tensors.insert(
        "output_norm.weight".to_string(),
        StoredTensor::Float {
            shape: vec![d],
            data: output_norm,
        },
    );
    Ok(())
}

/// AWQ for one block: a look at the float block's four inputs chooses each group's scales,
/// which are folded into `block` (`folded` marks the changed layers).
fn awq_fold_block(
    pass: &mut CalibrationPass,
    block: &mut BlockF32,
    opts: &Options,
    layer: usize,
    folded: &mut [bool; 7],
) -> Result<()> {
    let Method::Awq { grid } = opts.method else {
        unreachable!("awq only")
    };
    let c = pass.config().clone();
    let mut inputs: BTreeMap<usize, Vec<f32>> = BTreeMap::new();
    let mut mean_abs: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    {
        let mut look = super::calibrate::Observe(|input: Input, x: &[f32]| {
            let k = input.width(&c);
            mean_abs.insert(input as usize, awq::mean_abs(x, k));
            inputs.insert(input as usize, sample_rows(x, k, awq::SEARCH_SAMPLES));
            Ok(())
        });
        let mut copy = block.clone();
        pass.run_block(&mut copy, &mut look, false)?;
    }
    let group = c.n_heads / c.n_kv_heads;
    for input in Input::ALL {
        let lins = input.linears();
        let formats: Vec<Format> = lins
            .iter()
            .map(|l| opts.format_of(&l.tensor_name(layer)))
            .collect();
        let ws: Vec<&[f32]> = lins.iter().map(|&l| &block.linear(l).data[..]).collect();
        let k = block.linear(lins[0]).k;
        let x = &inputs[&(input as usize)];
        let tie = (input == Input::AttentionOutput).then_some((group, c.head_dim));
        let s = awq_search(&formats, &ws, x, &mean_abs[&(input as usize)], k, grid, tie)?;
        if s.iter().all(|&v| v == 1.0) {
            continue; // alpha = 0 won: nothing to fold
        }
        for l in fold_scales(block, input, &s, group, c.head_dim) {
            folded[l as usize] = true;
        }
    }
    Ok(())
}

/// Fold AWQ scales `s` for `input` into `block`: the layers reading it get `W diag(s)` and
/// what produces it is divided by `s` (see the module docs), so the block computes the
/// same function. `group` query heads share a key/value head of `head_dim` channels.
/// Returns the layers whose weights changed.
pub fn fold_scales(
    block: &mut BlockF32,
    input: Input,
    s: &[f32],
    group: usize,
    head_dim: usize,
) -> Vec<Linear> {
    let mut changed = input.linears().to_vec();
    for &l in input.linears() {
        scale_columns(&mut block.linear_mut(l).data, s);
    }
    let divide_rows = |m: &mut super::calibrate::Matrix, f: &dyn Fn(usize) -> f32| {
        let k = m.k;
        for r in 0..m.rows {
            let sv = f(r);
            m.data[r * k..(r + 1) * k].iter_mut().for_each(|x| *x /= sv);
        }
    };
    match input {
        Input::Attention => block.attn_norm.iter_mut().zip(s).for_each(|(g, v)| *g /= v),
        Input::FeedForward => block.ffn_norm.iter_mut().zip(s).for_each(|(g, v)| *g /= v),
        Input::AttentionOutput => {
            // V's row kvh * hd + i feeds channel h * hd + i of every head h of group kvh,
            // whose scales are equal (the search ties them).
            let f = |r: usize| s[(r / head_dim) * group * head_dim + r % head_dim];
            divide_rows(block.linear_mut(Linear::V), &f);
            changed.push(Linear::V);
        }
        Input::FeedForwardHidden => {
            divide_rows(block.linear_mut(Linear::Up), &|r| s[r]);
            changed.push(Linear::Up);
        }
    }
    changed
}

/// AWQ's search for one group of layers `ws` (each `rows x k`, quantized to its format in
/// `formats`) reading the sample `x`: the scales of the exponent with the lowest summed
/// output error, `alpha = i / grid`. With `tie = (group, head_dim)`, channels
/// `h * head_dim + i` of the heads of one key/value group share a scale (their mean
/// magnitudes averaged), as a fold into V's rows requires.
fn awq_search(
    formats: &[Format],
    ws: &[&[f32]],
    x: &[f32],
    mean_abs: &[f64],
    k: usize,
    grid: usize,
    tie: Option<(usize, usize)>,
) -> Result<Vec<f32>> {
    let mut m = mean_abs.to_vec();
    if let Some((group, hd)) = tie {
        let span = group * hd;
        for g0 in (0..k).step_by(span) {
            for i in 0..hd {
                let avg = (0..group).map(|h| m[g0 + h * hd + i]).sum::<f64>() / group as f64;
                for h in 0..group {
                    m[g0 + h * hd + i] = avg;
                }
            }
        }
    }
    let n = x.len() / k;
    let xv = View::new(x, n, k);
    let refs: Vec<Vec<f32>> = ws
        .iter()
        .map(|w| matmul_nt(xv, View::new(w, w.len() / k, k)))
        .collect();
    let grid = grid.max(1);
    let mut best: Option<(f64, Vec<f32>)> = None;
    for i in 0..=grid {
        let alpha = i as f64 / grid as f64;
        let s = if i == 0 {
            vec![1.0; k]
        } else {
            awq::scales(&m, alpha)
        };
        let mut err = 0f64;
        for ((w, &f), yr) in ws.iter().zip(formats).zip(&refs) {
            let rows = w.len() / k;
            let mut ws = w.to_vec();
            scale_columns(&mut ws, &s);
            let deq = QuantizedTensor::quantize(f, &ws, rows, k)?.dequantize();
            let eff = awq::effective(&deq, &s);
            let y = matmul_nt(xv, View::new(&eff, rows, k));
            err += y
                .iter()
                .zip(yr)
                .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
                .sum::<f64>();
        }
        if best.as_ref().is_none_or(|(e, _)| err < *e) {
            best = Some((err, s));
        }
    }
    Ok(best.expect("alpha 0 at least").1)
}

/// `w diag(s)` in place (`w` row-major, `s.len()` columns).
fn scale_columns(w: &mut [f32], s: &[f32]) {
    for row in w.chunks_exact_mut(s.len()) {
        row.iter_mut().zip(s).for_each(|(v, &f)| *v *= f);
    }
}

/// `x diag(1/s)` in place (rows of `k`).
fn scale_rows_inv(x: &mut [f32], s: &[f32], k: usize) {
    for row in x.chunks_exact_mut(k) {
        row.iter_mut().zip(s).for_each(|(v, &f)| *v /= f);
    }
}

/// The block and role of a block matrix's name (`blk.N.<role>.weight`).
pub fn block_of(name: &str) -> Option<(usize, Linear)> {
    let rest = name.strip_prefix("blk.")?;
    let (l, role) = rest.split_once('.')?;
    let lin = Linear::ALL
        .into_iter()
        .find(|x| role.strip_suffix(".weight") == Some(x.role()))?;
    Some((l.parse().ok()?, lin))
}

/// The stored matrix called `name` (one of [`matrix_names`]).
pub fn matrix<'a>(w: &'a Weights, name: &str) -> &'a QuantizedTensor {
    match name {
        "token_embd.weight" => &w.token_embd,
        "output.weight" => w.output_matrix(),
        _ => {
            let (l, lin) = block_of(name).expect("a matrix name of the model");
            block_matrix(w, l, lin)
        }
    }
}

/// Replace matrix `name` (one of [`matrix_names`]) of `w`.
pub fn set_matrix(w: &mut Weights, name: &str, q: QuantizedTensor) {
    match name {
        "token_embd.weight" => w.token_embd = q,
        "output.weight" => w.output = Some(q),
        _ => {
            let (l, lin) = block_of(name).expect("a matrix name of the model");
            let lw = &mut w.layers[l];
            *match lin {
                Linear::Q => &mut lw.wq,
                Linear::K => &mut lw.wk,
                Linear::V => &mut lw.wv,
                Linear::Output => &mut lw.wo,
                Linear::Gate => &mut lw.w_gate,
                Linear::Up => &mut lw.w_up,
                Linear::Down => &mut lw.w_down,
            } = q;
        }
    }
}

/// The stored matrix of block `layer` in role `lin`.
pub(crate) fn block_matrix(w: &Weights, layer: usize, lin: Linear) -> &QuantizedTensor {
    let l = &w.layers[layer];
    match lin {
        Linear::Q => &l.wq,
        Linear::K => &l.wk,
        Linear::V => &l.wv,
        Linear::Output => &l.wo,
        Linear::Gate => &l.w_gate,
        Linear::Up => &l.w_up,
        Linear::Down => &l.w_down,
    }
}
