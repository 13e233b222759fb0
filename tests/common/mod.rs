//! Shared test helpers: one GPU context per test binary, the SmolLM2 model file.
#![allow(dead_code)]

pub mod cli;
pub mod smollm2;
pub mod temp;

use std::sync::OnceLock;
use wgquant::format::{Format, QuantizedTensor};
use wgquant::gpu::plan::{GemvSteps, KernelConfig, GPU_GEMV_ROWS, GPU_GEMV_STEPS};
use wgquant::gpu::shaders::ActType;
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

/// A GEMV/GEMM variant to force (f32 activations, no tensor cores). With subgroups the GEMV
/// runs the GPU's untuned rows and steps, and 3-8 columns run on 64-lane lane groups beside
/// the tiled GEMM (a GPU's default) and on subgroups beside the GEMV blocks; without, the
/// entry's own rows and one lane a chunk.
pub fn variant_config(subgroups: bool, tiled_gemm: bool, texture_gemv: bool) -> KernelConfig {
    KernelConfig {
        subgroups,
        tiled_gemm,
        texture_gemv,
        texture_x_storage: false,
        coop_matrix: false,
        coop_wide_tile: false,
        gemv_rows: if subgroups {
            GPU_GEMV_ROWS
        } else {
            Default::default()
        },
        gemv_steps: if subgroups {
            GemvSteps::fixed(GPU_GEMV_STEPS)
        } else {
            GemvSteps::default()
        },
        gemv_unroll: None,
        gemv_wide_workgroup: subgroups && tiled_gemm,
        act: ActType::F32,
    }
}
