//! Shared test helpers: one GPU context per test binary, the SmolLM2 model file.
#![allow(dead_code)]

pub mod cli;
pub mod smollm2;
pub mod temp;

use std::sync::OnceLock;
use wgquant::gpu::GpuContext;

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
