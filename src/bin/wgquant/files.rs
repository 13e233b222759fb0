//! `wgquant quantize`, `dequantize` and `matmul`: the file-based commands.

use crate::AdapterArgs;
use std::path::PathBuf;
use std::process::ExitCode;
use wgquant::gpu::{ActQuant, GpuWeight, Int8Kernels, Kernels};
use wgquant::io::gguf::{self, MetaType, MetaValue, StoredTensor};
use wgquant::io::{npy, safetensors, Array};
use wgquant::quantize::activation::{observe, Granularity, Observer, StaticScales};
use wgquant::quantize::{self as methods, Calibration, Method};
use wgquant::{Error, Format, QuantizedTensor};

#[derive(clap::Args)]
pub struct QuantizeArgs {
    /// Input safetensors file (f32, f16 or bf16 tensors).
    input: PathBuf,
    /// Output GGUF file.
    output: PathBuf,
    /// Target format: q8_0, q4_0, q4_1, int8_g32, int4_g128, int4_g128_asym, ...
    #[arg(long, short)]
    format: Format,
    /// How scales are chosen: rtn (round to nearest, ggml's reference: the default), mse
    /// (per-block scale search), gptq or awq (these two need --calib), absmean (ternary
    /// formats: BitNet's mean |w| scale). See docs/QUANTIZATION.md.
    #[arg(long, short, default_value = "rtn")]
    method: Method,
    /// Calibration activations: an f32 .npy of shape [samples, K] (used for every weight
    /// whose rows have length K), or a .safetensors mapping weight names to their own
    /// [samples, K] inputs. With it, the output NMSE on these inputs is reported too.
    #[arg(long, value_name = "CALIB")]
    calib: Option<PathBuf>,
    /// Static int8 activation scales from the calibration data, stored in the GGUF metadata
    /// (`wgquant.act_scales.<name>`) for `matmul --activations int8-static`: the observer
    /// is minmax, mse, or pNN.NN (a percentile of |x|, e.g. p99.99). Needs --calib.
    #[arg(long, value_name = "OBSERVER", value_parser = parse_observer)]
    act_observer: Option<Observer>,
    /// Static activation scales per tensor (one scale) or per group of 32 input channels.
    #[arg(long, value_name = "tensor|group", default_value = "tensor", value_parser = parse_granularity)]
    act_granularity: Granularity,
}

#[derive(clap::Args)]
pub struct DequantizeArgs {
    /// Input GGUF file.
    input: PathBuf,
    /// Output safetensors file (every tensor as f32).
    output: PathBuf,
}

#[derive(clap::Args)]
pub struct MatmulArgs {
    #[command(flatten)]
    adapter: AdapterArgs,
    /// GGUF file holding the weight.
    #[arg(long)]
    weights: PathBuf,
    /// Name of the weight tensor (N rows of K).
    #[arg(long)]
    tensor: String,
    /// Activations: an f32 .npy of shape [n, K] (or [K] for one row).
    #[arg(long)]
    input: PathBuf,
    /// Where to write Y = X W^T, an f32 .npy of shape [n, N].
    #[arg(long)]
    output: PathBuf,
    /// f32 activations (default), or int8 activations with integer dot products (W8A8 /
    /// W4A8, for q8_0, int8_g* and int4_g* symmetric weights): int8-dynamic (per-token
    /// scales) or int8-static (the scales `quantize --act-observer` stored in the file).
    #[arg(long, default_value = "f32", value_parser = ["f32", "int8-dynamic", "int8-static"])]
    activations: String,
}

fn parse_observer(s: &str) -> Result<Observer, String> {
    match s.to_ascii_lowercase().as_str() {
        "minmax" => Ok(Observer::MinMax),
        "mse" => Ok(Observer::Mse),
        p if p.starts_with('p') => match p[1..].parse::<f64>() {
            Ok(v) if v > 0.0 && v <= 100.0 => Ok(Observer::Percentile(v)),
            _ => Err(format!(
                "'{s}': a percentile observer is p followed by 0 < NN <= 100"
            )),
        },
        _ => Err(format!(
            "'{s}' is not an observer: minmax, mse or pNN.NN (e.g. p99.99)"
        )),
    }
}

fn parse_granularity(s: &str) -> Result<Granularity, String> {
    match s {
        "tensor" => Ok(Granularity::PerTensor),
        "group" => Ok(Granularity::PerChannelGroup),
        _ => Err(format!("'{s}': choose tensor or group")),
    }
}

/// The metadata key of a tensor's static activation scales.
fn act_scales_key(name: &str) -> String {
    format!("wgquant.act_scales.{name}")
}

/// Why a tensor is kept as f32 instead of being quantized, if it is.
fn keep_reason(a: &Array, format: Format) -> Option<String> {
    if a.shape.len() != 2 {
        return Some(format!(
            "{}-D, only 2-D weights are quantized",
            a.shape.len()
        ));
    }
    format.check_k(a.shape[1]).err().map(|e| e.to_string())
}

pub fn quantize(args: QuantizeArgs) -> wgquant::Result<ExitCode> {
    if args.act_observer.is_some() && args.calib.is_none() {
        return Err(Error::InvalidArgument(
            "--act-observer computes static activation scales from calibration data: give --calib"
                .into(),
        ));
    }
    if args.method.needs_calibration() && args.calib.is_none() {
        return Err(Error::MissingCalibration {
            method: args.method.name().to_string(),
        });
    }
    let calib = args.calib.as_ref().map(Calibration::load).transpose()?;
    let file = safetensors::read_safetensors(&args.input)?;
    for t in &file.skipped {
        eprintln!(
            "skipped {} {:?}: dtype {} is not a float type",
            t.name, t.shape, t.dtype
        );
    }
    // Calibration that fits no weight is a mistake worth stopping for.
    if let (Some(c), Some(path)) = (&calib, &args.calib) {
        let mut fits = false;
        for (name, a) in &file.tensors {
            if keep_reason(a, args.format).is_none() && c.for_tensor(name, a.shape[1])?.is_some() {
                fits = true;
            }
        }
        if !fits {
            let ks: Vec<String> = file
                .tensors
                .iter()
                .filter(|(_, a)| keep_reason(a, args.format).is_none())
                .map(|(n, a)| format!("{n}: K = {}", a.shape[1]))
                .collect();
            return Err(Error::Calibration(format!(
                "{} ({}) fits none of the weights to quantize ({})",
                path.display(),
                c.describe(),
                if ks.is_empty() {
                    "there are none".to_string()
                } else {
                    ks.join(", ")
                }
            )));
        }
    }
    let bar = crate::progress_bar(file.tensors.len() as u64, "quantize");
    let mut out = Vec::new();
    let mut act_meta = Vec::new();
    let (mut quantized, mut kept) = (0, 0);
    for (name, a) in file.tensors {
        bar.set_message(name.clone());
        match keep_reason(&a, args.format) {
            Some(why) => {
                bar.suspend(|| eprintln!("kept {name} {:?} as f32: {why}", a.shape));
                kept += 1;
                out.push((
                    name,
                    StoredTensor::Float {
                        shape: a.shape.clone(),
                        data: a.data.clone(),
                    },
                ));
            }
            None => {
                quantized += 1;
                let (rows, k) = (a.shape[0], a.shape[1]);
                let acts = match &calib {
                    Some(c) => c.for_tensor(&name, k)?,
                    None => None,
                };
                let (method, note) = if args.method.needs_calibration() && acts.is_none() {
                    (Method::Rtn, format!(" (no calibration for K = {k}: rtn)"))
                } else {
                    (args.method, String::new())
                };
                let q = methods::quantize(args.format, method, &a.data, rows, k, acts)?;
                let report = methods::evaluate(&q, &a.data, acts);
                let output = match (report.output_nmse, acts) {
                    (Some(e), Some(x)) => {
                        format!(", output NMSE {e:.3e} on {} samples", x.samples())
                    }
                    _ => String::new(),
                };
                let awq = match q.awq_alpha {
                    Some(alpha) => format!(
                        "; alpha {alpha:.2}, scales stored as {name}.awq_scales [{k}]: \
                         divide this layer's input by them"
                    ),
                    None => String::new(),
                };
                bar.suspend(|| {
                    eprintln!(
                        "{name} [{rows}, {k}] {} {}{note}: weight NMSE {:.3e}{output}{awq}",
                        args.format,
                        method.name(),
                        report.weight_nmse
                    )
                });
                if let (Some(obs), Some(x)) = (args.act_observer, acts) {
                    let scales = match observe(x, obs, args.act_granularity)? {
                        StaticScales::PerTensor(s) => vec![s],
                        StaticScales::PerGroup(v) => v,
                    };
                    bar.suspend(|| {
                        eprintln!(
                            "{name}: {} static activation scale(s) from {} samples ({obs:?})",
                            scales.len(),
                            x.samples()
                        )
                    });
                    act_meta.push((
                        act_scales_key(&name),
                        MetaValue::Array(
                            MetaType::F32,
                            scales.into_iter().map(MetaValue::F32).collect(),
                        ),
                    ));
                }
                out.push((name.clone(), StoredTensor::Quantized(q.tensor)));
                if let Some(s) = q.awq_scales {
                    out.push((
                        format!("{name}.awq_scales"),
                        StoredTensor::Float {
                            shape: vec![k],
                            data: s,
                        },
                    ));
                }
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let mut meta = vec![(
        "general.quantized_by".to_string(),
        MetaValue::String(format!("wgquant {}", env!("CARGO_PKG_VERSION"))),
    )];
    // RTN files stay exactly what they were before methods existed.
    if args.method != Method::Rtn {
        meta.push((
            "wgquant.quantize.method".to_string(),
            MetaValue::String(args.method.to_string()),
        ));
    }
    if matches!(args.method, Method::Awq { .. }) {
        meta.push((
            "wgquant.quantize.awq_scales".to_string(),
            MetaValue::String(
                "each <name>.awq_scales tensor holds s (length K): <name> stores W*diag(s), \
                 so the layer's input must be divided by s (fold 1/s into the previous layer)"
                    .to_string(),
            ),
        ));
    }
    meta.extend(act_meta);
    gguf::write_model(&args.output, &meta, &out)?;
    eprintln!(
        "wrote {}: {quantized} tensors as {} ({}), {kept} kept as f32",
        args.output.display(),
        args.format,
        args.method
    );
    Ok(ExitCode::SUCCESS)
}

pub fn dequantize(args: DequantizeArgs) -> wgquant::Result<ExitCode> {
    let model = gguf::read_model(&args.input)?;
    let mut out = Vec::new();
    for (name, t) in model.tensors() {
        let arr = match t {
            StoredTensor::Float { shape, data } => Array::new(shape.clone(), data.clone())?,
            StoredTensor::Quantized(q) => Array::new(vec![q.rows(), q.k()], q.dequantize())?,
        };
        out.push((name.clone(), arr));
    }
    safetensors::write_safetensors(&args.output, &out)?;
    eprintln!("wrote {} tensors to {}", out.len(), args.output.display());
    Ok(ExitCode::SUCCESS)
}

pub fn matmul(args: MatmulArgs) -> wgquant::Result<ExitCode> {
    let model = gguf::read_model(&args.weights)?;
    let w = match model.tensor(&args.tensor) {
        Some(StoredTensor::Quantized(q)) => q.clone(),
        Some(StoredTensor::Float { shape, data }) if shape.len() == 2 => {
            QuantizedTensor::from_bytes(
                Format::F32,
                shape[0],
                shape[1],
                bytemuck::cast_slice(data).to_vec(),
            )?
        }
        Some(StoredTensor::Float { shape, .. }) => {
            return Err(Error::Shape(format!(
                "tensor {} has shape {shape:?}; matmul needs a 2-D weight",
                args.tensor
            )))
        }
        None => {
            return Err(Error::InvalidArgument(format!(
                "no tensor named '{}' in {}; it has: {}",
                args.tensor,
                args.weights.display(),
                model.tensor_names().join(", ")
            )))
        }
    };
    let x = npy::read_npy(&args.input)?;
    let n = match x.shape.as_slice() {
        [k] if *k == w.k() => 1,
        [n, k] if *k == w.k() => *n,
        s => {
            return Err(Error::Shape(format!(
                "input has shape {s:?}; weight {} is {} rows of K = {}, so X must be [n, {}]",
                args.tensor,
                w.rows(),
                w.k(),
                w.k()
            )))
        }
    };
    if n == 0 {
        return Err(Error::Shape("input has no rows".into()));
    }
    let ctx = args.adapter.context()?;
    let gw = GpuWeight::upload(&ctx, &w)?;
    let y = match args.activations.as_str() {
        "f32" => Kernels::new(&ctx.device, w.format())?.run_matmul(&ctx, &gw, &x.data, n)?,
        mode => {
            let act = if mode == "int8-static" {
                let key = act_scales_key(&args.tensor);
                let values = model
                    .metadata(&key)
                    .and_then(|v| v.as_array())
                    .ok_or_else(|| {
                        Error::InvalidArgument(format!(
                            "{} has no static activation scales for {} ({key}): quantize with \
                             --calib and --act-observer, or use --activations int8-dynamic",
                            args.weights.display(),
                            args.tensor
                        ))
                    })?;
                let scales: Vec<f32> = values
                    .iter()
                    .map(|v| v.as_f64().map(|f| f as f32))
                    .collect::<Option<_>>()
                    .ok_or_else(|| Error::malformed("GGUF", format!("{key} must hold numbers")))?;
                ActQuant::Static(match scales.as_slice() {
                    [s] => StaticScales::PerTensor(*s),
                    _ => StaticScales::PerGroup(scales),
                })
            } else {
                ActQuant::Dynamic
            };
            Int8Kernels::new(&ctx.device, w.format())?.run_matmul(&ctx, &gw, &x.data, n, &act)?
        }
    };
    npy::write_npy(&args.output, &[n, w.rows()], &y)?;
    eprintln!(
        "{} x {}^T ({}, {} rows) on {} -> {} [{n}, {}]",
        args.input.display(),
        args.tensor,
        w.format(),
        w.rows(),
        ctx.describe(),
        args.output.display(),
        w.rows()
    );
    Ok(ExitCode::SUCCESS)
}
