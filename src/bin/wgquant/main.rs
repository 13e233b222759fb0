//! The `wgquant` command: adapters, bench, plan, tune, verify, quantize, imatrix, dequantize,
//! matmul, and the model commands.

mod accuracy;
mod adapters;
mod bench;
mod calibrate;
mod files;
mod model;
mod plan;
mod tokenize;
mod tune;
mod verify;

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use wgquant::gpu::{DeviceOptions, GpuContext};

#[derive(Parser)]
#[command(
    name = "wgquant",
    version,
    about = "Quantized GPU matmul kernels (WGSL on wgpu) with GGUF-compatible formats",
    long_about = "Quantized GPU matmul kernels (WGSL on wgpu) with GGUF-compatible formats.\n\n\
        Adapter choice: the best hardware GPU, else a software adapter (lavapipe). Override with \
        --adapter NAME or the environment variables WGQUANT_ADAPTER (name substring) and \
        WGQUANT_BACKEND (vulkan, metal, dx12, gl)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Adapter selection shared by every GPU command.
#[derive(clap::Args, Clone, Debug)]
pub struct AdapterArgs {
    /// Use the adapter whose name contains NAME (case-insensitive); see `wgquant adapters`.
    #[arg(long, value_name = "NAME")]
    adapter: Option<String>,
}

impl AdapterArgs {
    pub fn context(&self) -> wgquant::Result<GpuContext> {
        let opts = DeviceOptions::from_env().with_adapter(self.adapter.as_deref());
        GpuContext::new(&opts)
    }
}

#[derive(Subcommand)]
enum Command {
    /// List every adapter with its backend, type, driver, useful features and limits.
    Adapters(adapters::Args),
    /// List the weight formats with bits per weight, block size and GGUF storage.
    Formats,
    /// Time GEMV/GEMM kernels per format against the f32 baseline of the same run.
    Bench(bench::Args),
    /// Which kernels a matmul of a format, shape and batch runs on an adapter (or a preset
    /// such as h100), with the reason for each choice.
    Plan(plan::Args),
    /// Time the GEMV rows-per-lane-group candidates on an adapter and cache the fastest
    /// (used by every later run on the same adapter and driver).
    Tune(tune::Args),
    /// Run the kernel correctness suite on an adapter; non-zero exit on any failure.
    Verify(verify::Args),
    /// Quantize every 2-D tensor of a safetensors or GGUF file into a GGUF file.
    Quantize(files::QuantizeArgs),
    /// Importance of every matrix's inputs (mean squared activation per column) of a llama
    /// GGUF model over a text, stored in llama.cpp's imatrix GGUF layout.
    Imatrix(calibrate::ImatrixArgs),
    /// Dequantize every tensor of a GGUF file into an f32 safetensors file.
    Dequantize(files::DequantizeArgs),
    /// Y = X W^T on the GPU for one weight tensor of a GGUF file.
    Matmul(files::MatmulArgs),
    /// Weight and layer-output error of each format (N(0,1) data, optionally real weights).
    Accuracy(accuracy::Args),
    /// Token ids of a text for a GGUF model's tokenizer (like llama-tokenize --ids).
    Tokenize(tokenize::Args),
    /// Continue a prompt with a llama GGUF model on the GPU (streams the text).
    Generate(model::GenerateArgs),
    /// Perplexity of a llama GGUF model over a text file (llama-perplexity's method).
    Perplexity(model::PerplexityArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Adapters(a) => adapters::run(a),
        Command::Formats => adapters::formats(),
        Command::Bench(a) => bench::run(a),
        Command::Plan(a) => plan::run(a),
        Command::Tune(a) => tune::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Quantize(a) => files::quantize(a),
        Command::Imatrix(a) => calibrate::imatrix_cmd(a),
        Command::Dequantize(a) => files::dequantize(a),
        Command::Matmul(a) => files::matmul(a),
        Command::Accuracy(a) => accuracy::run(a),
        Command::Tokenize(a) => tokenize::run(a),
        Command::Generate(a) => model::generate_cmd(a),
        Command::Perplexity(a) => model::perplexity_cmd(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Formats named on the command line; `all` stands for every format.
pub fn parse_formats(names: &[String]) -> wgquant::Result<Vec<wgquant::Format>> {
    wgquant::Format::parse_list(names)
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub fn progress_bar(len: u64, what: &str) -> indicatif::ProgressBar {
    styled_bar(
        len,
        what,
        "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}",
    )
}

/// A progress bar on stderr with `template` (indicatif's syntax).
pub fn styled_bar(len: u64, what: &str, template: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(indicatif::ProgressStyle::with_template(template).expect("valid template"));
    bar.set_prefix(what.to_string());
    bar
}
