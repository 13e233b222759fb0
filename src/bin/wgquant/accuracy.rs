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
    let real = match &args.weights {
        Some(p) => safetensors::read_safetensors(p)?
            .tensors
            .into_iter()
            .filter(|(_, a)| a.shape.len() == 2)
            .collect(),
        None => Vec::new(),
    };
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
