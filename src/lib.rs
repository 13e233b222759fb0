//! wgquant: quantized GPU matmul kernels in WGSL on wgpu, with GGUF-compatible formats.
//!
//! Data flows one way: f32 weights -> [`format`](mod@format) (CPU blocks) -> [`quantize`] (scale choice)
//! -> [`gpu`] upload and kernels -> results.

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
