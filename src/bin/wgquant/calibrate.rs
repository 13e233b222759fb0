//! `wgquant quantize` of a whole llama model on calibration text (`--calib-text`,
//! `--imatrix`, `--target-bpw`), and `wgquant imatrix`.

use crate::files::{output_metadata, QuantizeArgs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;
use wgquant::io::gguf::{self, MetaValue, StoredTensor};
use wgquant::llama::calibrate::{BlockF32, CalibTokens, CalibrationPass, Observe};
use wgquant::llama::mixed::{self, PlanOptions};
use wgquant::llama::quantize::{self as model_quant, Options, Progress};
use wgquant::llama::tokenizer::Tokenizer;
use wgquant::llama::Weights;
use wgquant::quantize::{Imatrix, Method};
use wgquant::{Error, Result};

#[derive(clap::Args)]
pub struct ImatrixArgs {
    /// The llama GGUF model to run.
    #[arg(long, value_name = "M.gguf")]
    model: PathBuf,
    /// Text to run it over (repeat for several files, taken in order).
    #[arg(long, value_name = "FILE", required = true)]
    text: Vec<PathBuf>,
    /// Where to write the importance matrix (llama.cpp's imatrix GGUF layout).
    #[arg(short, long, value_name = "OUT.gguf")]
    output: PathBuf,
    /// Tokens of the text to use, at most.
    #[arg(long, value_name = "N", default_value_t = 16384)]
    calib_tokens: usize,
    /// Tokens per sequence (each run from an empty context).
    #[arg(long, value_name = "C", default_value_t = 512)]
    ctx: usize,
}

/// A progress bar over steps (blocks, then roles for a plan), with ETA (hidden when stderr is not a terminal).
fn step_bar(len: u64, what: &str) -> indicatif::ProgressBar {
    crate::styled_bar(
        len,
        what,
        "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} steps, ETA {eta} {msg}",
    )
}

/// The texts concatenated (a blank line between files) and how to name them.
fn read_texts(paths: &[PathBuf]) -> Result<(String, Vec<String>)> {
    let mut text = String::new();
    let mut names = Vec::new();
    for p in paths {
        let t = std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?;
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        text.push_str(&t);
        names.push(
            p.file_name()
                .map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into()),
        );
    }
    Ok((text, names))
}

/// The calibration sequences from the texts, with a line saying what they are.
fn calib_tokens(
    weights: &Weights,
    paths: &[PathBuf],
    ctx: usize,
    max_tokens: usize,
    model: &Path,
) -> Result<(CalibTokens, Vec<String>)> {
    let tokenizer = Tokenizer::from_metadata(&weights.metadata).map_err(|e| e.at_path(model))?;
    let ctx = ctx.min(weights.config.context_length);
    let (text, names) = read_texts(paths)?;
    let toks = CalibTokens::from_text(&tokenizer, &text, ctx, max_tokens)?;
    eprintln!(
        "calibration: {} tokens of {} in {} sequences of up to {ctx}",
        toks.tokens(),
        names.join(" + "),
        toks.sequences().len()
    );
    Ok((toks, names))
}

/// Whether `quantize` takes the whole-model path: for the options only it has, and for
/// pruning a llama GGUF or quantizing one to a 2:4 format (whose embedding and output head
/// then stay dense).
pub fn wants_model_path(args: &QuantizeArgs) -> bool {
    !args.calib_text.is_empty()
        || args.imatrix.is_some()
        || args.target_bpw.is_some()
        || !args.tensor_type.is_empty()
        || ((args.prune.is_some() || matches!(args.format, wgquant::Format::Sparse24(_)))
            && args.calib.is_none()
            && is_llama_gguf(&args.input))
}

/// Whether `path` is a GGUF file of a llama model (a header read; anything else is not).
fn is_llama_gguf(path: &Path) -> bool {
    gguf::GgufReader::open(path).is_ok_and(|r| {
        r.header()
            .metadata("general.architecture")
            .and_then(|v| v.as_str())
            == Some("llama")
    })
}

/// The method named on the command line with the GPTQ flags applied.
pub(crate) fn method_of(args: &QuantizeArgs) -> Result<Method> {
    match args.method {
        Method::Gptq { block, .. } => Ok(Method::Gptq {
            damp: args.gptq_damp,
            block,
            act_order: args.act_order,
            static_groups: args.static_groups || args.act_order,
        }),
        m if args.act_order || args.static_groups || args.gptq_damp != 0.01 => {
            Err(Error::InvalidArgument(format!(
                "--act-order, --static-groups and --gptq-damp are GPTQ options; the method is {}",
                m.name()
            )))
        }
        m => Ok(m),
    }
}

pub fn quantize_model_cmd(args: QuantizeArgs) -> Result<ExitCode> {
    let t0 = Instant::now();
    if args.calib.is_some() {
        return Err(Error::InvalidArgument(
            "--calib (stored activations) and --calib-text (run the model) exclude each other"
                .into(),
        ));
    }
    if args.act_observer.is_some() {
        return Err(Error::InvalidArgument(
            "--act-observer needs --calib activations; it is not computed from --calib-text".into(),
        ));
    }
    let method = method_of(&args)?;
    let mut opts = Options::new(args.format, method);
    opts.prune = args.prune.map(|pattern| wgquant::quantize::Prune {
        pattern,
        method: args.prune_method,
    });
    if let Some(p) = &args.imatrix {
        if method != Method::Imatrix {
            return Err(Error::InvalidArgument(format!(
                "--imatrix is read by --method imatrix; the method is {}",
                method.name()
            )));
        }
        let m = Imatrix::read(p)?;
        eprintln!(
            "importance matrix: {} entries from {} ({} chunks of {} tokens)",
            m.len(),
            p.display(),
            m.chunk_count,
            m.chunk_size
        );
        opts.imatrix = Some(m);
    }
    let needs_text = opts.needs_pass() || args.target_bpw.is_some();
    if needs_text && args.calib_text.is_empty() {
        return Err(Error::MissingCalibration {
            method: if args.target_bpw.is_some() {
                "--target-bpw".into()
            } else {
                opts.pass_reason()
            },
        });
    }
    let model = gguf::read_model(&args.input)?;
    let order: Vec<String> = model.tensor_names().iter().map(|s| s.to_string()).collect();
    let extra: Vec<(String, StoredTensor)> = model
        .tensors()
        .iter()
        .filter(|(n, _)| n.starts_with("rope_freqs"))
        .cloned()
        .collect();
    let weights = Weights::from_gguf(model).map_err(|e| e.at_path(&args.input))?;
    let calib = if args.calib_text.is_empty() {
        None
    } else {
        Some(calib_tokens(
            &weights,
            &args.calib_text,
            args.calib_ctx,
            args.calib_tokens,
            &args.input,
        )?)
    };
    if let Some(target) = args.target_bpw {
        let (toks, _) = calib.as_ref().expect("checked above");
        let candidates = if args.candidates.is_empty() {
            mixed::DEFAULT_CANDIDATES.to_vec()
        } else {
            args.candidates.clone()
        };
        let bar = step_bar(weights.config.n_layers as u64 + 1, "measure");
        let plan = mixed::plan(
            &weights,
            toks,
            &PlanOptions {
                target_bpw: target,
                candidates,
            },
            &mut |done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            },
        )?;
        bar.finish_and_clear();
        eprint!("{}", plan.table());
        opts.formats = plan.formats.clone();
    }
    for (pattern, f) in &args.tensor_type {
        let names: Vec<String> = model_quant::matrix_names(&weights)
            .into_iter()
            .filter(|n| n.contains(pattern.as_str()))
            .collect();
        if names.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "--tensor-type {pattern}={f}: no matrix name contains '{pattern}'"
            )));
        }
        for n in names {
            let k = model_quant::matrix(&weights, &n).k();
            f.check_k(k).map_err(|e| {
                Error::InvalidArgument(format!("--tensor-type {pattern}={f}: {n}: {e}"))
            })?;
            opts.formats.insert(n, *f);
        }
    }
    let bar = step_bar(weights.config.n_layers as u64 + 1, "quantize");
    let mut lines = Vec::new();
    let result =
        model_quant::quantize_model(&weights, calib.as_ref().map(|(t, _)| t), &opts, &mut |p| {
            match p {
                Progress::Step { done, total } => {
                    bar.set_length(total as u64);
                    bar.set_position(done as u64);
                }
                Progress::Tensor(r) => {
                    let out = r
                        .output_nmse
                        .map_or(String::new(), |e| format!(", output NMSE {e:.3e}"));
                    let line = format!(
                        "{} [{}, {}] {} {}: weight NMSE {:.3e}{out}",
                        r.name, r.rows, r.k, r.format, r.how, r.weight_nmse
                    );
                    bar.suspend(|| eprintln!("{line}"));
                    bar.set_message(r.name.clone());
                    lines.push(line);
                }
            }
        })?;
    bar.finish_and_clear();
    let mut tensors = result.tensors;
    let mut out: Vec<(String, StoredTensor)> = Vec::with_capacity(order.len());
    for name in &order {
        if let Some(t) = tensors.remove(name) {
            out.push((name.clone(), t));
        } else if let Some(t) = extra.iter().find(|(n, _)| n == name) {
            out.push(t.clone());
        }
    }
    // Every tensor the model has was written back in place.
    debug_assert!(tensors.is_empty(), "{:?}", tensors.keys());
    let uniform = opts.formats.values().all(|&f| f == args.format);
    let mut meta = output_metadata(
        weights.metadata.clone(),
        uniform.then_some(args.format),
        method,
    );
    if let Some((toks, names)) = &calib {
        meta.push((
            "wgquant.quantize.calibration".to_string(),
            MetaValue::String(format!(
                "{} tokens of {} in sequences of up to {}",
                toks.tokens(),
                names.join(" + "),
                toks.sequences().iter().map(|s| s.len()).max().unwrap_or(0)
            )),
        ));
    }
    if let Some(b) = args.target_bpw {
        meta.push((
            "wgquant.quantize.target_bpw".to_string(),
            MetaValue::F32(b as f32),
        ));
    }
    gguf::write_model(&args.output, &meta, &out)?;
    let bpw = model_quant::tensors_bits_per_weight(out.iter().map(|(_, t)| t));
    let bytes = std::fs::metadata(&args.output)
        .map_err(|e| Error::io(&args.output, e))?
        .len();
    eprintln!(
        "wrote {}: {} matrices ({}), {bpw:.3} bits per weight over all tensors, {:.1} MB, in \
         {:.1} s",
        args.output.display(),
        result.reports.len(),
        method,
        bytes as f64 / 1e6,
        t0.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn imatrix_cmd(args: ImatrixArgs) -> Result<ExitCode> {
    let t0 = Instant::now();
    let weights = Weights::open(&args.model)?;
    let (toks, names) = calib_tokens(
        &weights,
        &args.text,
        args.ctx,
        args.calib_tokens,
        &args.model,
    )?;
    let c = &weights.config;
    let mut pass = CalibrationPass::new(&weights, &toks)?;
    let mut m = Imatrix::new();
    m.datasets = names;
    m.chunk_count = toks.sequences().len() as u32;
    m.chunk_size = toks.sequences().iter().map(|s| s.len()).max().unwrap_or(0) as u32;
    let bar = step_bar(c.n_layers as u64 + 1, "imatrix");
    for l in 0..c.n_layers {
        let mut block = BlockF32::from_weights(&weights, l);
        let mut hooks = Observe(|input: wgquant::llama::calibrate::Input, x: &[f32]| {
            for lin in input.linears() {
                m.add(&lin.tensor_name(l), x, input.width(c));
            }
            Ok(())
        });
        pass.run_block(&mut block, &mut hooks, true)?;
        bar.set_position(l as u64 + 1);
    }
    let head = if weights.output.is_some() {
        "output.weight"
    } else {
        "token_embd.weight"
    };
    m.add(head, &pass.head_input(&weights.output_norm), c.d_model);
    bar.finish_and_clear();
    m.write(&args.output)?;
    eprintln!(
        "wrote {}: importance of {} matrices' inputs over {} tokens, in {:.1} s",
        args.output.display(),
        m.len(),
        toks.tokens(),
        t0.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
