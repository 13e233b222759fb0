//! Shared test helpers: one GPU context per test binary, the SmolLM2 model file.
#![allow(dead_code)]

pub mod cli;
pub mod smollm2;
pub mod temp;

use std::sync::OnceLock;
use wgquant::format::{Format, QuantizedTensor};
use wgquant::gpu::{GpuContext, GpuWeight};
use wgquant::rng::Rng;

/// The adapter every GPU test runs on (honours WGQUANT_ADAPTER / WGQUANT_BACKEND).
/// Tests fail, never skip, when there is none: CI installs lavapipe.
pub fn ctx() -> &'static GpuContext {
    static CTX: OnceLock<GpuContext> = OnceLock::new();
    CTX.get_or_init(|| {
        let ctx = GpuContext::from_env().unwrap_or_else(|e| panic!("{e}"));
        eprintln!("GPU tests run on {}", ctx.describe());
        ctx
    })
}

/// A `rows` x `k` weight of N(0, 1) values from `seed`, quantized to `format` and uploaded.
pub fn random_weight(format: Format, rows: usize, k: usize, seed: u64) -> GpuWeight {
    let q = QuantizedTensor::quantize(format, &Rng::new(seed).normal_vec(rows * k), rows, k)
        .unwrap_or_else(|e| panic!("{format} {rows}x{k}: {e}"));
    GpuWeight::upload(ctx(), &q).unwrap_or_else(|e| panic!("upload {format} {rows}x{k}: {e}"))
}

/// Fail, listing every failed case, unless there are none.
pub fn assert_no_failures(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "failed cases:\n{}",
        failures.join("\n")
    );
}
