//! A llama-architecture language model (e.g. SmolLM2) from a GGUF file: configuration,
//! tokenizer, a CPU reference forward pass and the GPU forward pass built on wgquant's kernels.

pub mod calibrate;
pub mod config;
pub mod cpu;
pub mod generate;
pub mod gpu;
pub mod mixed;
pub mod quantize;
pub mod synthetic;
pub mod tokenizer;
pub mod weights;

pub use config::Config;
pub use cpu::CpuModel;
pub use generate::{generate, perplexity, GenerationStats, Perplexity, Sampler};
pub use gpu::{GpuModel, GpuModelOptions, Output};
pub use weights::{LayerWeights, Weights};
