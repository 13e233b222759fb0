//! Every kernel variant, not only the one `Kernels::new` picks for this adapter: GEMV with
//! workgroup-memory or subgroup reduction or reading textures, GEMM tiled or as GEMV in
//! blocks of 8 columns, and the tensor-core GEMM where the device can run it (lavapipe from
//! Mesa 25.1: `scripts/lavapipe-coop.sh`).
//! Same suite as `gpu_kernels` (verify's shapes and tails, poisoned and guarded outputs).

mod common;

use common::ctx;
use wgquant::format::{Format, IntFormat};
use wgquant::gpu::plan::{GemvSteps, KernelConfig};
use wgquant::gpu::shaders::ActType;
use wgquant::gpu::Kernels;
use wgquant::verify;

fn configs() -> Vec<KernelConfig> {
    let mut v = Vec::new();
    let subgroups = ctx().device.features().contains(wgpu::Features::SUBGROUP);
    for sg in [false, true] {
        if sg && !subgroups {
            continue;
        }
        for tiled_gemm in [false, true] {
            // The texture GEMV ignores the subgroup choice: one combination is enough.
            for texture_gemv in [false, true] {
                if !(sg && texture_gemv) {
                    v.push(common::variant_config(sg, tiled_gemm, texture_gemv));
                }
            }
        }
    }
    if wgquant::gpu::check_coop_gemm(&ctx().device).is_ok() {
        for coop_wide_tile in [false, true] {
            v.push(KernelConfig {
                subgroups,
                tiled_gemm: true,
                texture_gemv: false,
                texture_x_storage: false,
                coop_matrix: true,
                coop_wide_tile,
                gemv_rows: Default::default(),
                gemv_steps: GemvSteps::default(),
                gemv_unroll: None,
                gemv_wide_workgroup: false,
                act: ActType::F32,
            });
        }
    }
    v
}

#[test]
fn every_variant_matches_the_reference() {
    let formats = [
        Format::F32,
        Format::Q8_0,
        Format::Q4_0,
        Format::Int(IntFormat::new(4, 128, true)),
    ];
    let ctx = ctx();
    let mut failures = Vec::new();
    let mut cases = 0;
    for config in configs() {
        for format in formats {
            let kernels = Kernels::with_config(&ctx.device, format, config).unwrap();
            assert_eq!(kernels.config(), config);
            for (i, (rows, k, n)) in verify::matmul_shapes(format).into_iter().enumerate() {
                let r = verify::matmul_case(ctx, &kernels, rows, k, n, 7000 + i as u64).unwrap();
                cases += 1;
                if !r.passed() {
                    failures.push(format!("{config:?} {r:?}"));
                }
                // The tensor-core GEMM with f16 activations and outputs (tests/kernels_f16.rs
                // covers the other variants with f16 ones).
                if config.coop_matrix {
                    let r = verify::matmul_case_f16(ctx, &kernels, rows, k, n, 8000 + i as u64)
                        .unwrap();
                    cases += 1;
                    if !r.passed() {
                        failures.push(format!("{config:?} {r:?}"));
                    }
                }
            }
        }
    }
    assert!(cases > 0);
    common::assert_no_failures(&failures);
}

#[test]
fn subgroup_kernels_need_the_feature() {
    let ctx = ctx();
    let config = KernelConfig {
        subgroups: true,
        tiled_gemm: true,
        texture_gemv: false,
        texture_x_storage: false,
        coop_matrix: false,
        coop_wide_tile: false,
        gemv_rows: Default::default(),
        gemv_steps: GemvSteps::default(),
        gemv_unroll: None,
        gemv_wide_workgroup: false,
        act: ActType::F32,
    };
    let r = Kernels::with_config(&ctx.device, Format::Q4_0, config);
    if ctx.device.features().contains(wgpu::Features::SUBGROUP) {
        assert!(r.is_ok());
    } else {
        assert!(matches!(r, Err(wgquant::Error::DeviceLimit(_))));
    }
}

#[test]
fn coop_matrix_kernels_need_the_features() {
    let ctx = ctx();
    let config = KernelConfig {
        coop_matrix: true,
        coop_wide_tile: false,
        ..KernelConfig::for_device(&ctx.device)
    };
    let r = Kernels::with_config(&ctx.device, Format::Q4_0, config);
    if wgquant::gpu::check_coop_gemm(&ctx.device).is_ok() {
        assert!(r.is_ok());
        // Chosen by default on GPUs; CPU adapters run GEMV blocks, faster there.
        let cpu = ctx.device.adapter_info().device_type == wgpu::DeviceType::Cpu;
        assert_eq!(KernelConfig::for_device(&ctx.device).coop_matrix, !cpu);
    } else {
        assert!(matches!(r, Err(wgquant::Error::DeviceLimit(_))));
        assert!(!KernelConfig::for_device(&ctx.device).coop_matrix);
    }
}

/// The texture GEMV at the widths where it raises the rows setting, every format: one column
/// (16 rows per invocation by default for the light formats, 8 for the others) and four (8
/// rows, 4 for the table formats): `texture_gemv_rows`; and the batches it splits into
/// blocks (`texture_gemv_cols`: 4 or up to 8 columns per invocation, columns after the last
/// whole group in a block of their own), x in uniform buffers and, at k = 8192, in a texture
/// or a storage buffer (`texture_x_storage`, with which every format runs up to 8 columns).
/// Each against the CPU reference with row tails (no multiple of 16, more than one workgroup
/// of 16 invocations x 16 rows) and an odd number of chunks per row.
#[test]
fn texture_gemv_every_format_at_its_row_counts() {
    let ctx = ctx();
    let config = common::variant_config(false, true, true);
    let x_storage = KernelConfig {
        texture_x_storage: true,
        ..config
    };
    let mut failures = Vec::new();
    let mut cases = 0;
    for (f, format) in Format::all().into_iter().enumerate() {
        let kernels = Kernels::with_config(&ctx.device, format, config).unwrap();
        let kernels_x_storage = Kernels::with_config(&ctx.device, format, x_storage).unwrap();
        let k3 = 3 * format.k_multiple();
        let shapes = [(37, 1), (291, 1), (37, 4), (291, 4), (37, 7), (37, 13)]
            .map(|(m, n)| (&kernels, m, k3, n))
            .into_iter()
            .chain([
                (&kernels, 37, 8192, 5),
                // Groups of up to 8 columns for every format (8 + 5), x in a storage buffer.
                (&kernels_x_storage, 37, k3, 13),
                (&kernels_x_storage, 37, 8192, 5),
            ]);
        for (i, (kernels, m, k, n)) in shapes.enumerate() {
            let seed = 9100 + 10 * f as u64 + i as u64;
            let r = verify::matmul_case(ctx, kernels, m, k, n, seed).unwrap();
            cases += 1;
            if !r.passed() {
                failures.push(format!("{:?} {r:?}", kernels.config().texture_x_storage));
            }
        }
    }
    assert!(cases > 0);
    common::assert_no_failures(&failures);
}
