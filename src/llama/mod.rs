//! A llama-architecture language model (e.g. SmolLM2) from a GGUF file: configuration,
//! tokenizer, a CPU reference forward pass and the GPU forward pass built on wgquant's kernels.

pub mod tokenizer;
