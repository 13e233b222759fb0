//! Mixed precision under a size budget: a format per matrix, chosen from candidates by
//! measured sensitivity so that the model's bits per weight meet a target.
//!
//! Sensitivity: one calibration pass over the unquantized model gives each of a block's
//! inputs its Hessian `H = X^T X` (over all calibration tokens). For every matrix `W` and
//! candidate format `f`, `W` is quantized by RTN (the calibrated methods lower every
//! candidate's error alike, and would cost minutes per candidate) and its relative output
//! error is `e = tr(dW H dW^T) / tr(W H W^T)`, exactly `||X dW^T||^2 / ||X W^T||^2` on the
//! calibration inputs. A matrix already stored in a candidate format costs nothing there
//! (it is copied). The token embedding's error as a lookup table is measured on the
//! calibration tokens' rows, and, when it is tied, its error as the output projection is
//! added.
//!
//! Relative errors of different matrices do not cost the model alike (at 4 bits the tied
//! embedding of SmolLM2 alone adds 6% to its perplexity), so each error is turned into a
//! predicted loss: for every role (the token embedding, the output projection, and each of
//! a block's seven roles over all layers), the matrices of that role alone are quantized to
//! their cheapest candidate and the increase of the mean log-loss on (up to
//! [`SENSITIVITY_SEQUENCES`] of) the calibration sequences is measured on the CPU;
//! `weight_role = increase / sum of the role's relative errors` (floored at a millionth of
//! the largest). Loss grows about linearly in the squared error, so the predicted increase
//! of the whole model is `sum_t weight_role(t) e_t(f_t)`.
//!
//! Choice: minimize that sum subject to `sum_t bits_t(f_t) <= budget`: a Lagrange
//! multiplier found by bisection picks each matrix's format on its own, then the bits left
//! over buy the upgrades with the most predicted loss saved per bit.

use super::calibrate::{BlockF32, CalibTokens, CalibrationPass, CpuScorer, Input, Observe};
use super::quantize::{block_matrix, hessian_of, matrix, matrix_names, set_matrix};
use super::weights::Weights;
use crate::linalg::{matmul_nt, View};
use crate::{Error, Format, QuantizedTensor, Result};
use std::collections::BTreeMap;
use std::fmt::Write;

/// The candidates when none are given: the GGUF formats from 8 down to 4.5 bits.
pub const DEFAULT_CANDIDATES: &[Format] = &[
    Format::Q8_0,
    Format::Q6_K,
    Format::Q5_1,
    Format::Q5_0,
    Format::Q4_1,
    Format::Q4_K,
    Format::IQ4_NL,
    Format::Q4_0,
];

#[derive(Clone, Debug)]
pub struct PlanOptions {
    /// Bits per weight over all of the model's tensors (f32 norms included).
    pub target_bpw: f64,
    pub candidates: Vec<Format>,
}

/// Calibration sequences the sensitivity of each role is measured on, at most.
pub const SENSITIVITY_SEQUENCES: usize = 4;

/// One matrix's options and choice.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanEntry {
    pub name: String,
    pub values: usize,
    /// `(format, bits, relative output error)` of every candidate that fits the matrix's
    /// rows, cheapest first.
    pub options: Vec<(Format, f64, f64)>,
    /// Predicted loss per unit of relative error (its role's sensitivity).
    pub weight: f64,
    /// Index into `options`.
    pub chosen: usize,
}

impl PlanEntry {
    pub fn format(&self) -> Format {
        self.options[self.chosen].0
    }
}

/// A format per matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub formats: BTreeMap<String, Format>,
    pub entries: Vec<PlanEntry>,
    /// Over all tensors, as planned.
    pub bits_per_weight: f64,
    pub target_bpw: f64,
}

impl Plan {
    /// The chosen table: per matrix role the formats by layer, then the totals.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let mut by_format: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for e in &self.entries {
            let (c, v) = by_format.entry(e.format().to_string()).or_default();
            *c += 1;
            *v += e.values;
        }
        let _ = writeln!(
            s,
            "plan for {:.3} bits per weight: {:.3} planned",
            self.target_bpw, self.bits_per_weight
        );
        for e in &self.entries {
            let (f, bits, err) = e.options[e.chosen];
            let _ = writeln!(
                s,
                "  {:28} {:8} {:6.3} bpw  output NMSE {err:.3e}  predicted loss {:+.2e}",
                e.name,
                f.to_string(),
                bits / e.values as f64,
                e.weight * err
            );
        }
        let total: usize = self.entries.iter().map(|e| e.values).sum();
        for (f, (c, v)) in by_format {
            let _ = writeln!(
                s,
                "  {f:8} {c:4} matrices, {:5.1}% of the weights",
                100.0 * v as f64 / total as f64
            );
        }
        s
    }
}

/// Measure every candidate on `calib` and choose (see the module docs).
pub fn plan(
    w: &Weights,
    calib: &CalibTokens,
    opts: &PlanOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Plan> {
    if opts.candidates.is_empty() {
        return Err(Error::InvalidArgument("no candidate formats".into()));
    }
    if !(opts.target_bpw.is_finite() && opts.target_bpw > 0.0) {
        return Err(Error::InvalidArgument(format!(
            "the target of {} bits per weight is not a positive number",
            opts.target_bpw
        )));
    }
    let c = &w.config;
    let roles = 7 + 1 + w.output.is_some() as usize;
    let total = c.n_layers + 1 + roles;
    let mut entries = Vec::new();
    let mut pass = CalibrationPass::new(w, calib)?;
    for l in 0..c.n_layers {
        let mut block = BlockF32::from_weights(w, l);
        let mut measured: Vec<(Input, Vec<f32>)> = Vec::new();
        let mut look = Observe(|input: Input, x: &[f32]| {
            let h = hessian_of(x, input.width(c));
            measured.push((input, h.iter().map(|&v| v as f32).collect()));
            Ok(())
        });
        pass.run_block(&mut block, &mut look, true)?;
        for (input, h) in measured {
            let k = input.width(c);
            for &lin in input.linears() {
                let src = block_matrix(w, l, lin);
                let weights = src.dequantize();
                let options = options(src, &opts.candidates, |q| {
                    Ok(hessian_error(&weights, &q.dequantize(), &h, k))
                })?;
                entries.push(PlanEntry {
                    name: lin.tensor_name(l),
                    values: src.rows() * k,
                    options,
                    weight: 1.0,
                    chosen: 0,
                });
            }
        }
        progress(l + 1, total);
    }
    // The embedding (lookup rows of the calibration tokens) and the output projection.
    let head_x = pass.head_input(&w.output_norm);
    let d = c.d_model;
    let head_h: Vec<f32> = hessian_of(&head_x, d).iter().map(|&v| v as f32).collect();
    let mut counts = vec![0u32; c.vocab_size];
    for s in calib.sequences() {
        for &t in s {
            counts[t as usize] += 1;
        }
    }
    let embd = &w.token_embd;
    let embd_w = embd.dequantize();
    let tied = w.output.is_none();
    let options_e = options(embd, &opts.candidates, |q| {
        let deq = q.dequantize();
        let lookup = lookup_error(&embd_w, &deq, &counts, d);
        Ok(if tied {
            lookup + hessian_error(&embd_w, &deq, &head_h, d)
        } else {
            lookup
        })
    })?;
    entries.insert(
        0,
        PlanEntry {
            name: "token_embd.weight".into(),
            values: embd.rows() * d,
            options: options_e,
            weight: 1.0,
            chosen: 0,
        },
    );
    if let Some(o) = &w.output {
        let ow = o.dequantize();
        let options_o = options(o, &opts.candidates, |q| {
            Ok(hessian_error(&ow, &q.dequantize(), &head_h, d))
        })?;
        entries.push(PlanEntry {
            name: "output.weight".into(),
            values: o.rows() * d,
            options: options_o,
            weight: 1.0,
            chosen: 0,
        });
    }
    progress(c.n_layers + 1, total);
    sensitivities(w, calib, &mut entries, &mut |i| {
        progress(c.n_layers + 1 + i, total)
    })?;
    debug_assert_eq!(
        entries.iter().map(|e| e.name.clone()).collect::<Vec<_>>(),
        matrix_names(w)
    );
    // Norms stay f32.
    let norm_values = c.n_layers * 2 * d + d;
    let all_values = entries.iter().map(|e| e.values).sum::<usize>() + norm_values;
    let budget = opts.target_bpw * all_values as f64 - 32.0 * norm_values as f64;
    choose(&mut entries, budget).map_err(|min| {
        Error::InvalidArgument(format!(
            "{} bits per weight cannot be met with these candidates: the smallest plan has \
             {:.3}",
            opts.target_bpw,
            (min + 32.0 * norm_values as f64) / all_values as f64
        ))
    })?;
    let bits: f64 = entries.iter().map(|e| e.options[e.chosen].1).sum();
    Ok(Plan {
        formats: entries
            .iter()
            .map(|e| (e.name.clone(), e.format()))
            .collect(),
        bits_per_weight: (bits + 32.0 * norm_values as f64) / all_values as f64,
        target_bpw: opts.target_bpw,
        entries,
    })
}

/// The role of a matrix (`attn_q`, ..., `token_embd`, `output`).
fn role(name: &str) -> &str {
    let base = name.strip_suffix(".weight").unwrap_or(name);
    base.rsplit('.').next().unwrap_or(base)
}

/// Sets every entry's weight to its role's measured loss sensitivity (see the module
/// docs); `progress` sees each role done.
fn sensitivities(
    w: &Weights,
    calib: &CalibTokens,
    entries: &mut [PlanEntry],
    progress: &mut dyn FnMut(usize),
) -> Result<()> {
    let seqs: Vec<&Vec<u32>> = calib
        .sequences()
        .iter()
        .filter(|s| s.len() >= 2)
        .take(SENSITIVITY_SEQUENCES)
        .collect();
    let loss = |m: &Weights| -> Result<f64> {
        let mut scorer = CpuScorer::new(m);
        let (mut sum, mut n) = (0f64, 0usize);
        for s in &seqs {
            for lp in scorer.log_probs(s)? {
                sum -= lp as f64;
                n += 1;
            }
        }
        Ok(sum / n.max(1) as f64)
    };
    let base = loss(w)?;
    let mut roles: Vec<String> = Vec::new();
    for e in entries.iter() {
        let r = role(&e.name).to_string();
        if !roles.contains(&r) {
            roles.push(r);
        }
    }
    let mut per_role = BTreeMap::new();
    for (i, r) in roles.iter().enumerate() {
        let mut m = w.clone();
        let mut err = 0f64;
        for e in entries.iter().filter(|e| role(&e.name) == r) {
            let (f, _, nmse) = e.options[0];
            let src = matrix(w, &e.name);
            if f == src.format() {
                continue;
            }
            let q = QuantizedTensor::quantize(f, &src.dequantize(), src.rows(), src.k())?;
            set_matrix(&mut m, &e.name, q);
            err += nmse;
        }
        let up = if err > 0.0 { loss(&m)? - base } else { 0.0 };
        per_role.insert(r.clone(), (up, err));
        progress(i + 1);
    }
    let slope = |(up, err): (f64, f64)| if err > 0.0 { up.max(0.0) / err } else { 0.0 };
    let top = per_role.values().map(|&v| slope(v)).fold(0f64, f64::max);
    for e in entries.iter_mut() {
        e.weight = slope(per_role[role(&e.name)])
            .max(top * 1e-6)
            .max(f64::MIN_POSITIVE);
    }
    Ok(())
}

/// `(format, bits, relative error)` per candidate that fits `src`'s rows, cheapest first;
/// `error` sees the candidate's RTN quantization. The source's own format costs nothing (it
/// is copied).
fn options(
    src: &QuantizedTensor,
    candidates: &[Format],
    mut error: impl FnMut(&QuantizedTensor) -> Result<f64>,
) -> Result<Vec<(Format, f64, f64)>> {
    let (rows, k) = (src.rows(), src.k());
    let values = src.dequantize();
    let mut v = Vec::new();
    for &f in candidates {
        if f.check_k(k).is_err() || v.iter().any(|(g, _, _)| *g == f) {
            continue;
        }
        let e = if f == src.format() {
            0.0
        } else {
            error(&QuantizedTensor::quantize(f, &values, rows, k)?)?
        };
        v.push((f, 8.0 * (f.row_bytes(k) * rows) as f64, e.max(0.0)));
    }
    if v.is_empty() {
        // No candidate fits: it stays as it is stored.
        let f = src.format();
        v.push((f, 8.0 * src.bytes().len() as f64, 0.0));
    }
    v.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.2.total_cmp(&b.2)));
    Ok(v)
}

/// `tr(dW H dW^T) / tr(W H W^T)` (`h` the `k` x `k` Hessian of the inputs).
fn hessian_error(want: &[f32], got: &[f32], h: &[f32], k: usize) -> f64 {
    let rows = want.len() / k;
    let dw: Vec<f32> = got.iter().zip(want).map(|(a, b)| a - b).collect();
    let hv = View::new(h, k, k);
    let quad = |m: &[f32]| -> f64 {
        let p = matmul_nt(View::new(m, rows, k), hv);
        p.iter().zip(m).map(|(&a, &b)| a as f64 * b as f64).sum()
    };
    let den = quad(want);
    if den > 0.0 {
        quad(&dw) / den
    } else {
        0.0
    }
}

/// The embedding's relative error on the rows the calibration tokens look up.
fn lookup_error(want: &[f32], got: &[f32], counts: &[u32], d: usize) -> f64 {
    let (mut num, mut den) = (0f64, 0f64);
    for (t, &n) in counts.iter().enumerate() {
        if n == 0 {
            continue;
        }
        for j in t * d..(t + 1) * d {
            num += n as f64 * (got[j] as f64 - want[j] as f64).powi(2);
            den += n as f64 * (want[j] as f64).powi(2);
        }
    }
    if den > 0.0 {
        num / den
    } else {
        0.0
    }
}

/// Choose within `budget` bits (see the module docs); `Err(min bits)` if even the smallest
/// options exceed it.
fn choose(entries: &mut [PlanEntry], budget: f64) -> std::result::Result<(), f64> {
    let bits = |es: &[PlanEntry]| es.iter().map(|e| e.options[e.chosen].1).sum::<f64>();
    for e in entries.iter_mut() {
        e.chosen = 0;
    }
    let min = bits(entries);
    if min > budget {
        return Err(min);
    }
    // Each matrix minimizes cost + lambda * bits; more lambda, fewer bits.
    let pick = |es: &mut [PlanEntry], lambda: f64| {
        for e in es.iter_mut() {
            e.chosen = (0..e.options.len())
                .min_by(|&a, &b| {
                    let f = |i: usize| e.weight * e.options[i].2 + lambda * e.options[i].1;
                    f(a).total_cmp(&f(b))
                })
                .expect("non-empty");
        }
    };
    let (mut lo, mut hi) = (0f64, 1f64);
    pick(entries, hi);
    while bits(entries) > budget && hi < 1e30 {
        hi *= 4.0;
        pick(entries, hi);
    }
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        pick(entries, mid);
        if bits(entries) > budget {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    pick(entries, hi);
    // Spend what is left on the upgrades that save the most error per bit.
    loop {
        let left = budget - bits(entries);
        let mut best: Option<(f64, usize, usize)> = None;
        for (ti, e) in entries.iter().enumerate() {
            let (_, b0, c0) = e.options[e.chosen];
            for (oi, &(_, b, cst)) in e.options.iter().enumerate() {
                if b > b0 && b - b0 <= left && cst < c0 {
                    let gain = e.weight * (c0 - cst) / (b - b0);
                    if best.is_none_or(|(g, _, _)| gain > g) {
                        best = Some((gain, ti, oi));
                    }
                }
            }
        }
        match best {
            Some((_, ti, oi)) => entries[ti].chosen = oi,
            None => break,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, opts: &[(f64, f64)]) -> PlanEntry {
        PlanEntry {
            name: name.into(),
            values: 100,
            options: opts.iter().map(|&(b, c)| (Format::Q4_0, b, c)).collect(),
            weight: 1.0,
            chosen: 0,
        }
    }

    /// The budget is met, and extra bits go where they save the most.
    #[test]
    fn choice_meets_the_budget_and_spends_it_well() {
        let mut es = vec![
            entry("a", &[(450.0, 0.10), (500.0, 0.0), (850.0, 0.0)]),
            entry("b", &[(450.0, 0.02), (500.0, 0.019), (850.0, 0.001)]),
        ];
        choose(&mut es, 950.0).unwrap();
        assert_eq!((es[0].chosen, es[1].chosen), (1, 0));
        choose(&mut es, 1350.0).unwrap();
        assert_eq!((es[0].chosen, es[1].chosen), (1, 2));
        assert_eq!(choose(&mut es, 899.0), Err(900.0));
        choose(&mut es, 1e9).unwrap();
        assert!(es.iter().all(|e| e.options[e.chosen].2 <= 0.001));
    }
}
