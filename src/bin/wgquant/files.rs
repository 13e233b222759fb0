//! `wgquant quantize`, `dequantize` and `matmul`: the file-based commands.

use crate::AdapterArgs;
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use wgquant::gpu::{ActQuant, GpuWeight, Int8Kernels, Kernels};
use wgquant::io::gguf::{self, MetaType, MetaValue, StoredTensor};
use wgquant::io::{npy, safetensors, Array};
use wgquant::quantize::activation::{observe, Granularity, Observer, StaticScales};
use wgquant::quantize::prune::PruneMethod;
use wgquant::quantize::{self as methods, Calibration, Method};
use wgquant::{Error, Format, QuantizedTensor};

#[derive(clap::Args)]
pub struct QuantizeArgs {
    /// Input file: safetensors (f32, f16 or bf16 tensors) or GGUF (any tensor type wgquant
    /// reads: F32, F16, BF16, Q8_0, Q4_0, K-quants, wgquant int planes, ...; each is
    /// dequantized, and all metadata is copied; tensors already in the target format are
    /// copied unchanged). GGUF is recognized by its magic bytes.
    pub(crate) input: PathBuf,
    /// Output GGUF file.
    pub(crate) output: PathBuf,
    /// Target format: q8_0, q4_0, q4_1, int8_g32, int4_g128, int4_g128_asym, ...
    #[arg(long, short)]
    pub(crate) format: Format,
    /// How scales are chosen: rtn (round to nearest, ggml's reference: the default), mse
    /// (per-block scale search), gptq or awq (these two need --calib), absmean (ternary
    /// formats: BitNet's mean |w| scale). See docs/QUANTIZATION.md.
    #[arg(long, short, default_value = "rtn")]
    pub(crate) method: Method,
    /// Calibration activations: an f32 .npy of shape [samples, K] (used for every weight
    /// whose rows have length K), or a .safetensors mapping weight names to their own
    /// [samples, K] inputs. With it, the output NMSE on these inputs is reported too.
    #[arg(long, value_name = "CALIB")]
    pub(crate) calib: Option<PathBuf>,
    /// Static int8 activation scales from the calibration data, stored in the GGUF metadata
    /// (`wgquant.act_scales.<name>`) for `matmul --activations int8-static`: the observer
    /// is minmax, mse, or pNN.NN (a percentile of |x|, e.g. p99.99). Needs --calib.
    #[arg(long, value_name = "OBSERVER", value_parser = parse_observer)]
    pub(crate) act_observer: Option<Observer>,
    /// Static activation scales per tensor (one scale) or per group of 32 input channels.
    #[arg(long, value_name = "tensor|group", default_value = "tensor", value_parser = parse_granularity)]
    pub(crate) act_granularity: Granularity,
    /// Calibration text (repeat for several files): the input, a llama GGUF model, runs
    /// over it block by block, and each matrix is quantized on the inputs the quantized
    /// layers before it produce (see docs/QUANTIZATION.md, "Whole models").
    #[arg(long, value_name = "FILE")]
    pub(crate) calib_text: Vec<PathBuf>,
    /// Tokens of the calibration text to use, at most.
    #[arg(long, value_name = "N", default_value_t = 16384)]
    pub(crate) calib_tokens: usize,
    /// Tokens per calibration sequence (each run from an empty context).
    #[arg(long, value_name = "C", default_value_t = 512)]
    pub(crate) calib_ctx: usize,
    /// A stored importance matrix (from `wgquant imatrix` or llama.cpp's `llama-imatrix`)
    /// for --method imatrix, instead of computing it from --calib-text.
    #[arg(long, value_name = "FILE")]
    pub(crate) imatrix: Option<PathBuf>,
    /// GPTQ: visit columns by decreasing Hessian diagonal (implies --static-groups).
    #[arg(long)]
    pub(crate) act_order: bool,
    /// GPTQ: fix every block's scales from the original weights before the pass.
    #[arg(long)]
    pub(crate) static_groups: bool,
    /// GPTQ: the damping added to the Hessian's diagonal, as a fraction of its mean
    /// (more generalizes better from a small or narrow calibration text).
    #[arg(long, value_name = "D", default_value_t = 0.01)]
    pub(crate) gptq_damp: f64,
    /// Mixed precision: choose a format per matrix from --candidates by measured
    /// sensitivity on --calib-text so that the file has this many bits per weight (over all
    /// tensors); --format is then unused but for the ftype rule.
    #[arg(long, value_name = "B")]
    pub(crate) target_bpw: Option<f64>,
    /// The formats --target-bpw chooses from (comma-separated; default q8_0, q6_k, q5_1,
    /// q5_0, q4_1, q4_k, iq4_nl, q4_0).
    #[arg(long, value_name = "F,F,...", value_delimiter = ',')]
    pub(crate) candidates: Vec<Format>,
    /// The format of the matrices whose names contain PATTERN (repeatable; the last match
    /// wins), e.g. `token_embd=q8_0` or `ffn_down=q6_k`; for a llama GGUF input. Applied
    /// after --target-bpw's plan.
    #[arg(long, value_name = "PATTERN=FORMAT", value_parser = parse_tensor_type)]
    pub(crate) tensor_type: Vec<(String, Format)>,
    /// Prune before quantizing: 2:4 or 4:8 (N of every M weights of a row stay) or P%
    /// (unstructured, e.g. 50%). The 2:4 formats (int4_g128_2of4, ...) store only the kept
    /// weights; other formats store the pruned ones as zeros. In the whole-model path
    /// (--calib-text) the token embedding and output head stay dense.
    #[arg(long, value_name = "2:4|4:8|P%")]
    pub(crate) prune: Option<methods::prune::Pattern>,
    /// How --prune chooses the weights: magnitude (|w|), wanda (|w| times its input's norm,
    /// needs calibration) or sparsegpt (the GPTQ-style solver that updates the kept
    /// weights; with --method gptq it prunes and quantizes in one pass; needs calibration).
    #[arg(
        long,
        value_name = "METHOD",
        default_value = "magnitude",
        requires = "prune"
    )]
    pub(crate) prune_method: methods::prune::PruneMethod,
}

fn parse_tensor_type(s: &str) -> Result<(String, Format), String> {
    let (pattern, format) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}': give PATTERN=FORMAT, e.g. token_embd=q8_0"))?;
    if pattern.is_empty() {
        return Err(format!("'{s}': the pattern is empty"));
    }
    let f: Format = format.parse().map_err(|e: Error| e.to_string())?;
    Ok((pattern.to_string(), f))
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
fn keep_reason(shape: &[usize], format: Format) -> Option<String> {
    if shape.len() != 2 {
        return Some(format!("{}-D, only 2-D weights are quantized", shape.len()));
    }
    format.check_k(shape[1]).err().map(|e| e.to_string())
}

/// One tensor to quantize: f32 values, or a quantized tensor (from a GGUF input) that is
/// dequantized when its turn comes, so only one tensor at a time is held as f32.
struct InTensor {
    name: String,
    /// Numpy order (`[rows, k]` for a weight).
    shape: Vec<usize>,
    data: InData,
}

enum InData {
    Float(Vec<f32>),
    Quantized(QuantizedTensor),
}

impl InTensor {
    fn values(&self) -> Cow<'_, [f32]> {
        match &self.data {
            InData::Float(v) => Cow::Borrowed(v),
            InData::Quantized(q) => Cow::Owned(q.dequantize()),
        }
    }
}

/// The input of `quantize`: its tensors in file order and, for a GGUF input, its metadata.
struct QuantizeInput {
    tensors: Vec<InTensor>,
    /// `Some` for a GGUF input: every metadata entry, in file order.
    gguf_metadata: Option<Vec<(String, MetaValue)>>,
}

/// Whether `path` is a GGUF file: its first four bytes are the GGUF magic (or, so that a
/// broken `.gguf` gets a GGUF error rather than a safetensors one, its extension is gguf).
fn is_gguf(path: &Path) -> wgquant::Result<bool> {
    let mut magic = [0u8; 4];
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let starts_gguf = match file.read_exact(&mut magic) {
        Ok(()) => &magic == gguf::MAGIC,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => false,
        Err(e) => return Err(Error::io(path, e)),
    };
    let named_gguf = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
    Ok(starts_gguf || named_gguf)
}

fn read_quantize_input(path: &Path) -> wgquant::Result<QuantizeInput> {
    if is_gguf(path)? {
        return read_gguf_input(path);
    }
    let file = safetensors::read_safetensors(path)?;
    for t in &file.skipped {
        eprintln!(
            "skipped {} {:?}: dtype {} is not a float type",
            t.name, t.shape, t.dtype
        );
    }
    Ok(QuantizeInput {
        tensors: file
            .tensors
            .into_iter()
            .map(|(name, a)| InTensor {
                name,
                shape: a.shape,
                data: InData::Float(a.data),
            })
            .collect(),
        gguf_metadata: None,
    })
}

/// Every tensor of a GGUF file (quantized ones stay quantized until their turn), with the
/// shape its header gives (a 3-D quantized tensor stays 3-D and is kept as f32).
fn read_gguf_input(path: &Path) -> wgquant::Result<QuantizeInput> {
    let file = gguf::GgufFile::open(path)?;
    let header_shapes: HashMap<String, Vec<usize>> = file
        .header()
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.shape()))
        .collect();
    let model = file.into_model()?;
    let metadata = model.metadata_entries().to_vec();
    let tensors = model
        .into_tensors()
        .into_iter()
        .map(|(name, t)| match t {
            StoredTensor::Float { shape, data } => InTensor {
                name,
                shape,
                data: InData::Float(data),
            },
            StoredTensor::Quantized(q) => {
                // A plain GGUF tensor has its header shape; a wgquant int tensor (stored as
                // planes, so absent from the header under its own name) is rows x k.
                let shape = header_shapes
                    .get(&name)
                    .cloned()
                    .unwrap_or_else(|| vec![q.rows(), q.k()]);
                InTensor {
                    name,
                    shape,
                    data: InData::Quantized(q),
                }
            }
        })
        .collect();
    Ok(QuantizeInput {
        tensors,
        gguf_metadata: Some(metadata),
    })
}

/// llama.cpp's `general.file_type` (`enum llama_ftype`) for a file whose 2-D weights are
/// all in `format`, where llama.cpp has a value that means exactly that. K-quant files
/// other than Q2_K and Q6_K are mixes in llama.cpp (Q4_K_S, Q4_K_M, ...), MXFP4 is only
/// MXFP4_MOE, and NF4, binary and int formats have no value: for those the input's value
/// is left as it was.
fn llama_ftype(format: Format) -> Option<u32> {
    Some(match format {
        Format::F32 => 0,     // LLAMA_FTYPE_ALL_F32
        Format::Q4_0 => 2,    // LLAMA_FTYPE_MOSTLY_Q4_0
        Format::Q4_1 => 3,    // LLAMA_FTYPE_MOSTLY_Q4_1
        Format::Q8_0 => 7,    // LLAMA_FTYPE_MOSTLY_Q8_0
        Format::Q5_0 => 8,    // LLAMA_FTYPE_MOSTLY_Q5_0
        Format::Q5_1 => 9,    // LLAMA_FTYPE_MOSTLY_Q5_1
        Format::Q2_K => 10,   // LLAMA_FTYPE_MOSTLY_Q2_K
        Format::Q6_K => 18,   // LLAMA_FTYPE_MOSTLY_Q6_K
        Format::IQ4_NL => 25, // LLAMA_FTYPE_MOSTLY_IQ4_NL
        Format::TQ1_0 => 36,  // LLAMA_FTYPE_MOSTLY_TQ1_0
        Format::TQ2_0 => 37,  // LLAMA_FTYPE_MOSTLY_TQ2_0
        _ => return None,
    })
}

/// Set `key` to `value` where it is, or append it.
fn set_meta(meta: &mut Vec<(String, MetaValue)>, key: &str, value: MetaValue) {
    match meta.iter_mut().find(|(k, _)| k == key) {
        Some((_, v)) => *v = value,
        None => meta.push((key.to_string(), value)),
    }
}

/// The metadata of a quantized GGUF written from a GGUF input's `metadata`: every entry in
/// order (the writer derives `wgquant.format.*` and writes its own `wgquant.version`),
/// `general.quantized_by`, llama.cpp's `general.file_type` where `ftype_format` (the format
/// of every matrix) has a value that means exactly it, and the method for non-RTN ones.
pub(crate) fn output_metadata(
    metadata: Vec<(String, MetaValue)>,
    ftype_format: Option<Format>,
    method: Method,
) -> Vec<(String, MetaValue)> {
    let quantized_by = MetaValue::String(format!("wgquant {}", env!("CARGO_PKG_VERSION")));
    let mut meta: Vec<(String, MetaValue)> = metadata
        .into_iter()
        .filter(|(k, _)| {
            k != gguf::VERSION_KEY
                && !k.starts_with(gguf::FORMAT_KEY_PREFIX)
                && !k.starts_with("wgquant.quantize.")
        })
        .collect();
    set_meta(&mut meta, "general.quantized_by", quantized_by);
    if let Some(ftype) = ftype_format.and_then(llama_ftype) {
        if let Some((_, v)) = meta.iter_mut().find(|(k, _)| k == "general.file_type") {
            *v = match v {
                MetaValue::I32(_) => MetaValue::I32(ftype as i32),
                MetaValue::U64(_) => MetaValue::U64(ftype as u64),
                MetaValue::I64(_) => MetaValue::I64(ftype as i64),
                _ => MetaValue::U32(ftype),
            };
        }
    }
    // RTN files stay exactly what they were before methods existed.
    if method != Method::Rtn {
        meta.push((
            "wgquant.quantize.method".to_string(),
            MetaValue::String(method.to_string()),
        ));
    }
    meta
}

pub fn quantize(args: QuantizeArgs) -> wgquant::Result<ExitCode> {
    if crate::calibrate::wants_model_path(&args) {
        return crate::calibrate::quantize_model_cmd(args);
    }
    let method = crate::calibrate::method_of(&args)?;
    if args.act_observer.is_some() && args.calib.is_none() {
        return Err(Error::InvalidArgument(
            "--act-observer computes static activation scales from calibration data: give --calib"
                .into(),
        ));
    }
    if method.needs_calibration() && args.calib.is_none() {
        return Err(Error::MissingCalibration {
            method: method.name().to_string(),
        });
    }
    let calib = args.calib.as_ref().map(Calibration::load).transpose()?;
    let input = read_quantize_input(&args.input)?;
    // Calibration that fits no weight is a mistake worth stopping for.
    if let (Some(c), Some(path)) = (&calib, &args.calib) {
        let mut fits = false;
        for t in &input.tensors {
            if keep_reason(&t.shape, args.format).is_none()
                && c.for_tensor(&t.name, t.shape[1])?.is_some()
            {
                fits = true;
            }
        }
        if !fits {
            let ks: Vec<String> = input
                .tensors
                .iter()
                .filter(|t| keep_reason(&t.shape, args.format).is_none())
                .map(|t| format!("{}: K = {}", t.name, t.shape[1]))
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
    if args.prune.is_some() && args.prune_method != PruneMethod::Magnitude && calib.is_none() {
        return Err(Error::MissingCalibration {
            method: format!("{} pruning", args.prune_method),
        });
    }
    let bar = crate::progress_bar(input.tensors.len() as u64, "quantize");
    let mut out = Vec::new();
    let mut act_meta = Vec::new();
    let (mut quantized, mut kept, mut copied) = (0, 0, 0);
    for InTensor { name, shape, data } in input.tensors {
        bar.set_message(name.clone());
        // A GGUF tensor already in the target format is copied, not requantized: its
        // blocks are already what the format can represent, and requantizing them could
        // only lose precision (other quantizers, e.g. llama.cpp's importance-weighted
        // ones, pick scales that rtn would not).
        let data = match data {
            InData::Quantized(q)
                if q.format() == args.format && shape.len() == 2 && args.prune.is_none() =>
            {
                bar.suspend(|| {
                    eprintln!(
                        "copied {name} {shape:?}: already {} (blocks copied unchanged)",
                        args.format
                    )
                });
                copied += 1;
                out.push((name, StoredTensor::Quantized(q)));
                bar.inc(1);
                continue;
            }
            other => other,
        };
        let t = InTensor {
            name: name.clone(),
            shape,
            data,
        };
        let values = t.values();
        match keep_reason(&t.shape, args.format) {
            Some(why) => {
                bar.suspend(|| eprintln!("kept {name} {:?} as f32: {why}", t.shape));
                kept += 1;
                out.push((
                    name,
                    StoredTensor::Float {
                        shape: t.shape.clone(),
                        data: values.into_owned(),
                    },
                ));
            }
            None => {
                quantized += 1;
                let (rows, k) = (t.shape[0], t.shape[1]);
                let acts = match &calib {
                    Some(c) => c.for_tensor(&name, k)?,
                    None => None,
                };
                let (method, mut note) = if method.needs_calibration() && acts.is_none() {
                    (Method::Rtn, format!(" (no calibration for K = {k}: rtn)"))
                } else {
                    (method, String::new())
                };
                // A model's embedding and output head are never pruned (and stay dense
                // beside a 2:4 format), as in the whole-model path.
                let head = wgquant::llama::quantize::is_head(&name);
                let format = if head {
                    wgquant::llama::quantize::head_format(args.format)
                } else {
                    args.format
                };
                let prune_method = match args.prune_method {
                    m if m != PruneMethod::Magnitude && acts.is_none() => {
                        note += &format!(" (no calibration for K = {k}: magnitude pruning)");
                        PruneMethod::Magnitude
                    }
                    m => m,
                };
                let q = match args.prune.filter(|_| !head) {
                    Some(pattern) => {
                        let prune = methods::Prune {
                            pattern,
                            method: prune_method,
                        };
                        let stats = acts.map_or_else(Default::default, |x| {
                            methods::InputStats::for_pruning(method, prune, x)
                        });
                        methods::quantize_pruned(format, method, prune, &values, rows, k, &stats)?
                    }
                    None => methods::quantize(format, method, &values, rows, k, acts)?,
                };
                let report = methods::evaluate(&q, &values, acts);
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
                        format,
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
    let mut meta = output_metadata(
        input.gguf_metadata.unwrap_or_default(),
        Some(args.format),
        method,
    );
    if matches!(method, Method::Awq { .. }) {
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
    let copied = if copied > 0 {
        format!(", {copied} already {} copied", args.format)
    } else {
        String::new()
    };
    let bpw = wgquant::llama::quantize::tensors_bits_per_weight(out.iter().map(|(_, t)| t));
    eprintln!(
        "wrote {}: {quantized} tensors as {} ({}), {kept} kept as f32{copied}; {bpw:.3} bits \
         per weight over all tensors",
        args.output.display(),
        args.format,
        method
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
