//! wgquant: quantized GPU matmul kernels in WGSL on wgpu, with GGUF-compatible formats.
//!
//! Data flows one way, a module per step:
//!
//! 1. **format** ([`format`](mod@format)): f32 weights to GGUF-compatible blocks, exact CPU
//!    dequantization; no GPU.
//! 2. **quantize** ([`quantize`], whole models in [`llama::quantize`]): how scales are chosen
//!    (round-to-nearest, MSE search, GPTQ, AWQ, importance matrices).
//! 3. **upload** ([`gpu::GpuWeight`], arithmetic in [`gpu::layout`]): code and param planes in
//!    chunks that each fit a storage binding.
//! 4. **plan** ([`gpu::plan`]): which kernel runs, with which override constants, reading x
//!    from where, and why ([`gpu::plan::plan_matmul`] -> [`gpu::plan::MatmulPlan`]); every
//!    per-adapter and per-format rule lives there. `wgquant plan` prints it.
//! 5. **encode** ([`gpu::Kernels`]): a plan turned into pipelines, bind groups and dispatches
//!    encoded into the caller's command encoder ([`gpu::Dispatch`]); WGSL composed by
//!    [`gpu::shaders`].
//! 6. **read back**: [`gpu::GpuContext::read_f32`], or the caller's own copy.
//!
//! [`gpu::tune`] measures kernel candidates and writes the cache the plan reads.

pub mod bench;
pub mod error;
pub mod format;
pub mod gpu;
pub mod io;
pub mod linalg;
pub mod llama;
pub mod quantize;
pub mod rng;
pub mod verify;

pub use error::{Error, Result};
pub use format::{Format, QuantizedTensor};
