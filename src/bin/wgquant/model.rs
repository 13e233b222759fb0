//! `wgquant generate` and `wgquant perplexity`: a llama GGUF model on the GPU.

use crate::AdapterArgs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;
use wgquant::llama::calibrate::CpuScorer;
use wgquant::llama::generate::ChunkScorer;
use wgquant::llama::tokenizer::Tokenizer;
use wgquant::llama::{generate, perplexity, GpuModel, GpuModelOptions, Sampler, Weights};
use wgquant::{Error, Result};

#[derive(clap::Args)]
pub struct GenerateArgs {
    /// A llama-architecture GGUF model (e.g. SmolLM2), any weight format wgquant reads.
    #[arg(long, value_name = "M.gguf")]
    model: PathBuf,
    /// The text to continue (control tokens such as <|im_start|> are parsed).
    #[arg(long)]
    prompt: String,
    /// Most tokens to generate.
    #[arg(short = 'n', long = "n-predict", default_value_t = 64)]
    n: usize,
    /// 0 picks the most likely token every time (deterministic).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    temperature: f32,
    /// With a temperature: sample among the K most likely tokens (0: all).
    #[arg(long, default_value_t = 40)]
    top_k: usize,
    /// With a temperature: sample among the most likely tokens up to this total probability.
    #[arg(long, default_value_t = 0.95)]
    top_p: f32,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Wrap the prompt in the model's chat template as a user message and stop at the end of
    /// the assistant's turn.
    #[arg(long)]
    chat: bool,
    /// Keep generating past end-of-text tokens (for timing a fixed number of tokens).
    #[arg(long)]
    ignore_eos: bool,
    #[command(flatten)]
    adapter: AdapterArgs,
}

#[derive(clap::Args)]
pub struct PerplexityArgs {
    /// A llama-architecture GGUF model.
    #[arg(long, value_name = "M.gguf")]
    model: PathBuf,
    /// Text file to score (UTF-8).
    #[arg(long, value_name = "FILE")]
    text: PathBuf,
    /// Tokens per chunk; each chunk scores the predictions of its second half.
    #[arg(long, default_value_t = 512)]
    ctx: usize,
    /// Score only the first N chunks.
    #[arg(long, value_name = "N")]
    chunks: Option<usize>,
    /// Run on the CPU (f32, every core; the kernels of the calibration pass) instead of a
    /// GPU adapter: the same numbers, several times faster than a software adapter.
    #[arg(long)]
    cpu: bool,
    #[command(flatten)]
    adapter: AdapterArgs,
}

/// A model file's weights and tokenizer, each read once.
fn open(path: &Path) -> Result<(Weights, Tokenizer)> {
    let weights = Weights::open(path)?;
    let tokenizer = Tokenizer::from_metadata(&weights.metadata).map_err(|e| e.at_path(path))?;
    Ok((weights, tokenizer))
}

/// The GPU model with room for `context` tokens (at most the model's trained context);
/// reports the model and the load time since `t0`.
fn gpu_model(
    weights: &Weights,
    adapter: &AdapterArgs,
    context: usize,
    t0: Instant,
) -> Result<GpuModel> {
    let c = &weights.config;
    if context > c.context_length {
        return Err(Error::InvalidArgument(format!(
            "{context} tokens exceed the model's context of {}",
            c.context_length
        )));
    }
    let ctx = adapter.context()?;
    let model = GpuModel::new(
        &ctx,
        weights,
        GpuModelOptions {
            max_context: context,
            ..Default::default()
        },
    )?;
    eprintln!(
        "model: {} layers, width {}, {} heads ({} key/value), vocabulary {}; weights {} \
         ({:.1} MB); loaded on {} in {:.2} s",
        c.n_layers,
        c.d_model,
        c.n_heads,
        c.n_kv_heads,
        c.vocab_size,
        weights.format_summary(),
        weights.weight_bytes() as f64 / 1e6,
        ctx.describe(),
        t0.elapsed().as_secs_f64()
    );
    Ok(model)
}

pub fn generate_cmd(args: GenerateArgs) -> Result<ExitCode> {
    let mut sampler = Sampler::new(args.temperature, args.top_k, args.top_p, args.seed);
    sampler.validate()?;
    let t0 = Instant::now();
    let (weights, tokenizer) = open(&args.model)?;
    let text = if args.chat {
        tokenizer.chat_prompt(&args.prompt)?
    } else {
        args.prompt.clone()
    };
    let mut prompt = Vec::new();
    if tokenizer.add_bos() {
        prompt.extend(tokenizer.bos());
    }
    prompt.extend(tokenizer.encode(&text, true));
    if prompt.is_empty() {
        return Err(Error::InvalidArgument("the prompt is empty".into()));
    }
    // The prompt's length sizes the KV cache.
    let mut model = gpu_model(&weights, &args.adapter, prompt.len() + args.n.max(1), t0)?;
    drop(weights); // on the GPU now
    let mut decoder = tokenizer.stream_decoder();
    let mut out = std::io::stdout().lock();
    if !args.chat {
        write!(out, "{text}").and_then(|_| out.flush()).ok();
    }
    let stats = generate(
        &mut model,
        &prompt,
        args.n,
        &mut sampler,
        |t| !args.ignore_eos && tokenizer.is_end_of_generation(t),
        |t| {
            if !tokenizer.is_end_of_generation(t) {
                let piece = decoder.push(t);
                write!(out, "{piece}")
                    .and_then(|_| out.flush())
                    .map_err(|e| Error::io("stdout", e))?;
            }
            Ok(())
        },
    )?;
    writeln!(out, "{}", decoder.finish()).ok();
    eprintln!(
        "prompt: {} tokens in {:.2} s ({:.2} tokens/s); generation: {} tokens in {:.2} s \
         ({:.2} tokens/s)",
        stats.prompt_tokens,
        stats.prompt_seconds,
        stats.prompt_tokens_per_second(),
        stats.generated_tokens,
        stats.generation_seconds,
        stats.generation_tokens_per_second()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn perplexity_cmd(args: PerplexityArgs) -> Result<ExitCode> {
    let text = std::fs::read(&args.text).map_err(|e| Error::io(&args.text, e))?;
    let text = String::from_utf8(text).map_err(|_| {
        Error::InvalidArgument(format!("{} is not UTF-8 text", args.text.display()))
    })?;
    // llama.cpp's -f drops one trailing newline of the file.
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let t0 = Instant::now();
    let (weights, tokenizer) = open(&args.model)?;
    // As llama-perplexity: the whole text tokenized once (control tokens not parsed), BOS
    // first if the model asks for it, and then again in place of every chunk's first token.
    let bos = if tokenizer.add_bos() {
        tokenizer.bos()
    } else {
        None
    };
    let mut tokens: Vec<u32> = bos.into_iter().collect();
    tokens.extend(tokenizer.encode(text, false));
    if tokens.len() < 2 * args.ctx {
        return Err(Error::InvalidArgument(format!(
            "{} has {} tokens; perplexity with --ctx {} needs at least {}",
            args.text.display(),
            tokens.len(),
            args.ctx,
            2 * args.ctx
        )));
    }
    let mut model: Box<dyn ChunkScorer> = if args.cpu {
        eprintln!(
            "model: {} layers, width {}; weights {}; scoring on the CPU (f32)",
            weights.config.n_layers,
            weights.config.d_model,
            weights.format_summary()
        );
        Box::new(CpuScorer::new(&weights))
    } else {
        Box::new(gpu_model(&weights, &args.adapter, args.ctx, t0)?)
    };
    drop(weights);
    let available = tokens.len() / args.ctx;
    let chunks = args.chunks.map_or(available, |c| c.min(available));
    eprintln!(
        "{} tokens; scoring {chunks} chunks of {} tokens",
        tokens.len(),
        args.ctx
    );
    let bar = crate::progress_bar(chunks as u64, "perplexity");
    let t0 = Instant::now();
    let mut line = String::new();
    let result = perplexity(
        model.as_mut(),
        &tokens,
        args.ctx,
        bos,
        Some(chunks),
        |done, _, running| {
            bar.set_position(done as u64);
            line.push_str(&format!("[{done}]{running:.4},"));
            bar.set_message(format!("PPL {running:.4}"));
        },
    )?;
    bar.finish_and_clear();
    let secs = t0.elapsed().as_secs_f64();
    println!("{}", line.trim_end_matches(','));
    eprintln!(
        "{} predictions in {:.1} s ({:.1} tokens/s)",
        result.scored,
        secs,
        (result.chunks * args.ctx) as f64 / secs
    );
    println!(
        "Final estimate: PPL = {:.4} +/- {:.5}",
        result.ppl, result.ppl_error
    );
    Ok(ExitCode::SUCCESS)
}
