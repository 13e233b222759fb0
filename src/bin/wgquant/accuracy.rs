//! `wgquant accuracy`: weight and layer-output error of each format, on N(0,1) data and,
//! when given, on real weights.

use std::path::PathBuf;
use std::process::ExitCode;
use wgquant::format::reference::{matmul_f64, nmse};
use wgquant::io::safetensors;
use wgquant::rng::Rng;
use wgquant::{Format, QuantizedTensor};

#[derive(clap::Args)]
pub struct Args {
    /// Formats to measure (repeatable; `all` for every format; default: all).
    #[arg(long = "format", value_name = "F")]
    formats: Vec<String>,
    /// Real weights: every 2-D float tensor of this safetensors file whose rows fit a format
    /// is quantized with it (see scripts/fetch-minilm.sh).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Activation rows per tensor for the layer-output error (N(0,1) inputs).
    #[arg(long, default_value_t = 32)]
    samples: usize,
    /// Compare quantization methods (rtn, mse, gptq, awq, absmean; repeatable) on the real weights,
    /// with generated, structured activations (see `synthetic_activations`) for calibration
    /// and, held out, for the output error. Needs --weights.
    #[arg(long = "method", value_name = "M")]
    methods: Vec<wgquant::quantize::Method>,
    /// Only real tensors whose name contains this (e.g. `encoder.layer` for linear layers).
    #[arg(long, value_name = "SUBSTR")]
    only: Option<String>,
}

/// Activations with the structure real layer inputs have, generated per tensor: per-channel
/// magnitudes spread log-normally with 1% outlier channels 20x larger, and a rank-8 shared
/// component that correlates the channels: `x = s * (z + A r)`, `z` ~ N(0, I_k),
/// `r` ~ N(0, I_8), `A` fixed per tensor with N(0, 1/8) entries.
fn synthetic_activations(k: usize, samples: usize, tensor_seed: u64, sample_seed: u64) -> Vec<f32> {
    let mut t = Rng::new(tensor_seed);
    let scale: Vec<f32> = (0..k)
        .map(|_| {
            let s = (0.5 * t.normal()).exp() as f32;
            if t.uniform() < 0.01 {
                20.0 * s
            } else {
                s
            }
        })
        .collect();
    let a: Vec<f32> = (0..k * 8)
        .map(|_| (t.normal() / 8f64.sqrt()) as f32)
        .collect();
    let mut r = Rng::new(sample_seed);
    let mut x = Vec::with_capacity(samples * k);
    for _ in 0..samples {
        let shared: Vec<f32> = (0..8).map(|_| r.normal() as f32).collect();
        for j in 0..k {
            let low_rank: f32 = (0..8).map(|i| a[j * 8 + i] * shared[i]).sum();
            x.push(scale[j] * (r.normal() as f32 + low_rank));
        }
    }
    x
}

/// The methods table: per format and method, weight NMSE and held-out output NMSE on the
/// real tensors.
fn run_methods(
    formats: &[Format],
    methods: &[wgquant::quantize::Method],
    real: &[(String, wgquant::io::Array)],
) -> wgquant::Result<()> {
    use wgquant::quantize::{output_nmse, quantize, weight_nmse, Activations};
    let total = (formats.len() * methods.len()) as u64;
    let bar = crate::progress_bar(total, "methods");
    println!(
        "| format | method | weight NMSE | layer-output NMSE (held-out activations) | tensors |"
    );
    println!("|---|---|---|---|---|");
    for f in formats {
        for m in methods {
            bar.set_message(format!("{f} {m}"));
            let (mut w_num, mut w_den, mut y_sum, mut used) = (0f64, 0f64, 0f64, 0usize);
            for (i, (_, a)) in real.iter().enumerate() {
                let (rows, k) = (a.shape[0], a.shape[1]);
                if f.check_k(k).is_err() {
                    continue;
                }
                let calib = Activations::new(256, k, synthetic_activations(k, 256, i as u64, 1))?;
                let held = Activations::new(64, k, synthetic_activations(k, 64, i as u64, 2))?;
                let q = quantize(*f, *m, &a.data, rows, k, Some(&calib))?;
                let eff = q.effective_weights();
                let e = weight_nmse(&a.data, &eff);
                let den: f64 = a.data.iter().map(|&v| (v as f64).powi(2)).sum();
                w_num += e * den;
                w_den += den;
                y_sum += output_nmse(&held, &a.data, &eff, rows, k);
                used += 1;
            }
            let (w, y) = if used > 0 {
                (
                    format!("{:.3e}", w_num / w_den),
                    format!("{:.3e}", y_sum / used as f64),
                )
            } else {
                ("-".into(), "-".into())
            };
            bar.suspend(|| println!("| {f} | {} | {w} | {y} | {used}/{} |", m.name(), real.len()));
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    Ok(())
}

/// Sums for an NMSE over many tensors: (sum of squared error, sum of squared reference).
#[derive(Default, Clone, Copy)]
struct Acc {
    err: f64,
    reference: f64,
    tensors: usize,
}

impl Acc {
    fn add(&mut self, want: &[f64], got: &[f32]) {
        for (&a, &b) in want.iter().zip(got) {
            self.err += (b as f64 - a).powi(2);
            self.reference += a * a;
        }
        self.tensors += 1;
    }
    fn nmse(&self) -> Option<f64> {
        (self.tensors > 0).then(|| self.err / self.reference)
    }
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.3e}"))
}

pub fn run(args: Args) -> wgquant::Result<ExitCode> {
    let formats: Vec<Format> = if args.formats.is_empty() {
        Format::all()
    } else {
        crate::parse_formats(&args.formats)?
    }
    .into_iter()
    .filter(|f| f.is_quantized())
    .collect();
    let real: Vec<(String, wgquant::io::Array)> = match &args.weights {
        Some(p) => safetensors::read_safetensors(p)?
            .tensors
            .into_iter()
            .filter(|(n, a)| {
                a.shape.len() == 2 && args.only.as_ref().is_none_or(|o| n.contains(o.as_str()))
            })
            .collect(),
        None => Vec::new(),
    };
    if !args.methods.is_empty() {
        if real.is_empty() {
            return Err(wgquant::Error::InvalidArgument(
                "--method compares methods on real weights: give --weights (and check --only)"
                    .into(),
            ));
        }
        run_methods(&formats, &args.methods, &real)?;
        return Ok(ExitCode::SUCCESS);
    }
    let (rows, k) = (1024, 1024);
    let gauss = Rng::new(2026).normal_vec(rows * k);
    let gauss_ref: Vec<f64> = gauss.iter().map(|&v| v as f64).collect();
    let bar = crate::progress_bar(formats.len() as u64, "accuracy");
    let mut lines = Vec::new();
    for f in &formats {
        bar.set_message(f.to_string());
        let q = QuantizedTensor::quantize(*f, &gauss, rows, k)?;
        let gauss_nmse = nmse(&gauss_ref, &q.dequantize());
        let (mut w_acc, mut y_acc) = (Acc::default(), Acc::default());
        for (i, (_, a)) in real.iter().enumerate() {
            let (n_rows, n_k) = (a.shape[0], a.shape[1]);
            if f.check_k(n_k).is_err() {
                continue;
            }
            let q = QuantizedTensor::quantize(*f, &a.data, n_rows, n_k)?;
            let dq = q.dequantize();
            let w_ref: Vec<f64> = a.data.iter().map(|&v| v as f64).collect();
            w_acc.add(&w_ref, &dq);
            let x = Rng::new(i as u64).normal_vec(args.samples * n_k);
            let y_ref = matmul_f64(&a.data, n_rows, n_k, &x, args.samples);
            let y_q: Vec<f32> = matmul_f64(&dq, n_rows, n_k, &x, args.samples)
                .into_iter()
                .map(|v| v as f32)
                .collect();
            y_acc.add(&y_ref, &y_q);
        }
        lines.push(format!(
            "| {f} | {:.4} | {gauss_nmse:.3e} | {} | {} | {}/{} |",
            f.bits_per_weight(),
            fmt_opt(w_acc.nmse()),
            fmt_opt(y_acc.nmse()),
            w_acc.tensors,
            real.len()
        ));
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!("| format | bits/weight | weight NMSE, N(0,1) | weight NMSE, real | layer-output NMSE, real | real tensors used |");
    println!("|---|---|---|---|---|---|");
    for l in lines {
        println!("{l}");
    }
    Ok(ExitCode::SUCCESS)
}
