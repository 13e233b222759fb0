//! f16 activations and outputs (`Kernels::matmul_f16`): every matmul variant (GEMV with
//! workgroup-memory or subgroup reduction, the texture GEMV of CPU adapters with x in a
//! uniform buffer or, at k = 8192, a texture, GEMM tiled or as GEMV blocks) for Q4_0, the
//! device's own variant for several other formats, batches 1..=9 and a GEMM batch with tails
//! (`verify::matmul_case_f16`; `wgquant verify` runs the same check for every format on
//! devices that prefer f16), rows and k off the tile sizes. Outputs are poisoned and
//! guarded (the f16 padding of an odd output count included), NaN fails, and the NMSE
//! against the f64 reference must stay within `verify::MATMUL_F16_NMSE_MAX` on the
//! f16-rounded activations and `MATMUL_F16_UNROUNDED_NMSE_MAX` on the exact f32 ones.
//! Skips, saying so, on a device without `Features::SHADER_F16` (lavapipe has it).

mod common;

use common::ctx;
use half::f16;
use wgquant::format::{Format, IntFormat};
use wgquant::gpu::plan::{GemvSteps, KernelConfig, GPU_GEMV_ROWS, GPU_GEMV_STEPS};
use wgquant::gpu::shaders::ActType;
use wgquant::gpu::{GpuContext, Kernels};
use wgquant::rng::Rng;
use wgquant::verify::{
    self, MATMUL_COOP_NMSE_MAX, MATMUL_F16_NMSE_MAX, MATMUL_F16_UNROUNDED_NMSE_MAX,
};
use wgquant::Error;

fn has_f16(ctx: &GpuContext) -> bool {
    let ok = ActType::F16.supported_by(&ctx.device);
    if !ok {
        eprintln!("skipped: {} lacks Features::SHADER_F16", ctx.describe());
    }
    ok
}

fn configs(ctx: &GpuContext) -> Vec<KernelConfig> {
    let subgroups = ctx.device.features().contains(wgpu::Features::SUBGROUP);
    let mut v = Vec::new();
    for sg in [false, true] {
        if sg && !subgroups {
            continue;
        }
        for tiled_gemm in [false, true] {
            // The tensor-core GEMM (f16 products, its own bound) is checked by `wgquant
            // verify` and kernels_variants.
            v.push(common::variant_config(sg, tiled_gemm, false));
        }
    }
    // The texture GEMV (f16 x widened as it is copied, f16 outputs) where the device uses
    // it, x too long for the uniform buffer in a texture or a storage buffer.
    if wgquant::gpu::plan::uses_textures(&ctx.device) {
        let texture = common::variant_config(false, false, true);
        v.push(texture);
        v.push(KernelConfig {
            texture_x_storage: true,
            ..texture
        });
    }
    v
}

#[test]
fn f16_activations_match_the_reference_within_the_bound() {
    let ctx = ctx();
    if !has_f16(ctx) {
        return;
    }
    let formats = [
        Format::F32,
        Format::Q8_0,
        Format::Q4_0,
        Format::Q4_1,
        Format::Q4_K,
        Format::TQ2_0,
        Format::Int(IntFormat::new(4, 128, true)),
        Format::Int(IntFormat::new(8, 32, false)),
    ];
    let mut failures = Vec::new();
    let (mut worst_rounded, mut worst_exact) = (0f64, 0f64);
    let mut cases = 0;
    let mut per_format = std::collections::BTreeMap::new();
    // Every variant for Q4_0; the device's own variant for the other formats. CPU adapters
    // never prefer f16 (it is for GPUs), so there the buffer GEMV runs with the rows, steps
    // and lane groups a GPU runs untuned.
    let own = KernelConfig::for_device(&ctx.device);
    let own = if ctx.device.adapter_info().device_type == wgpu::DeviceType::Cpu {
        KernelConfig {
            gemv_rows: GPU_GEMV_ROWS,
            gemv_steps: GemvSteps::fixed(GPU_GEMV_STEPS),
            gemv_wide_workgroup: true,
            ..own
        }
    } else {
        own
    };
    let runs = configs(ctx).into_iter().map(|c| (Format::Q4_0, c)).chain(
        formats
            .into_iter()
            .filter(|f| *f != Format::Q4_0)
            .map(|f| (f, own)),
    );
    for (format, config) in runs {
        let kernels = Kernels::with_config(&ctx.device, format, config).unwrap();
        let km = format.k_multiple();
        let ks = [km, 3 * km, (640 / km).max(1) * km + km];
        // The texture GEMV reads 5-8 columns of x from a texture where they exceed the
        // uniform buffer.
        let x_texture = config.texture_gemv.then_some((37, 8192, 5));
        let shapes = (1..=9)
            .chain([37])
            .enumerate()
            .map(|(i, n)| ([67, 7, 130, 1][i % 4], ks[i % 3], n))
            .chain(x_texture);
        for (i, (rows, k, n)) in shapes.enumerate() {
            let c = verify::matmul_case_f16(ctx, &kernels, rows, k, n, 9000 + i as u64).unwrap();
            let exact = c.nmse_unrounded.unwrap().0;
            let coop = c.entry == "gemm_coop";
            assert_eq!(
                c.bound,
                if coop {
                    MATMUL_COOP_NMSE_MAX
                } else {
                    MATMUL_F16_NMSE_MAX
                }
            );
            cases += 1;
            worst_rounded = worst_rounded.max(c.nmse);
            worst_exact = worst_exact.max(exact);
            let w = per_format.entry(format.to_string()).or_insert((0f64, 0f64));
            *w = (w.0.max(c.nmse), w.1.max(exact));
            if !c.passed() {
                failures.push(format!("{config:?} {c:?}"));
            }
        }
    }
    eprintln!(
        "{cases} f16 cases: worst NMSE {worst_rounded:.2e} against the reference on \
         f16-rounded x (bound {MATMUL_F16_NMSE_MAX:.0e}), {worst_exact:.2e} on exact x \
         (bound {MATMUL_F16_UNROUNDED_NMSE_MAX:.0e})"
    );
    for (f, (r, e)) in &per_format {
        eprintln!("  {f:<12} worst NMSE {r:.2e} (rounded x) {e:.2e} (exact x)");
    }
    assert!(cases > 0);
    common::assert_no_failures(&failures);
}

/// The f16 variant computes what the f32 one does on the same (f16-rounded) activations, up
/// to rounding the output to f16: within one f16 ulp of the f32 kernel's result.
#[test]
fn f16_outputs_are_the_f32_outputs_rounded() {
    let ctx = ctx();
    if !has_f16(ctx) {
        return;
    }
    let (rows, k) = (67, 96);
    let gw = common::random_weight(Format::Q4_0, rows, k, 3);
    let kernels = Kernels::new(&ctx.device, Format::Q4_0).unwrap();
    for n in [1, 5, 20] {
        let xh: Vec<f16> = Rng::new(4 + n as u64)
            .normal_vec(n * k)
            .iter()
            .map(|&v| f16::from_f32(v))
            .collect();
        let xr: Vec<f32> = xh.iter().map(|v| v.to_f32()).collect();
        let y32 = kernels.run_matmul(ctx, &gw, &xr, n).unwrap();
        let y16 = kernels.run_matmul_f16(ctx, &gw, &xh, n).unwrap();
        assert_eq!(y16.len(), n * rows);
        for (i, (&a, &b)) in y32.iter().zip(&y16).enumerate() {
            let r = f16::from_f32(a);
            let ulp = (r.to_bits() as i32 - b.to_bits() as i32).abs();
            assert!(
                ulp <= 1 && r.is_sign_negative() == b.is_sign_negative() || r == b,
                "n={n} y[{i}]: f32 kernel {a}, f16 kernel {b}"
            );
        }
    }
}

/// Where the device uses the texture GEMV, f16 batches take it too: x widened to f32 as it
/// is copied into a uniform buffer or (5 columns at k = 8192) a texture or storage buffer.
#[test]
fn f16_takes_the_texture_gemv_where_the_device_uses_it() {
    let ctx = ctx();
    if !has_f16(ctx) {
        return;
    }
    if !wgquant::gpu::plan::uses_textures(&ctx.device) {
        eprintln!("skipped: {} runs the buffer GEMV", ctx.describe());
        return;
    }
    let rows = 37;
    for texture_x_storage in [false, true] {
        let config = KernelConfig {
            texture_x_storage,
            ..KernelConfig::for_device(&ctx.device)
        };
        let kernels = Kernels::with_config(&ctx.device, Format::Q4_0, config).unwrap();
        let long_x = if texture_x_storage {
            "x_to_buffer"
        } else {
            "x_to_texture"
        };
        for (k, n, copy) in [(96, 1, "x_to_buffer"), (8192, 5, long_x)] {
            let gw = common::random_weight(Format::Q4_0, rows, k, 5);
            let x = ctx.output_buffer("x", n * k / 2);
            let y = ctx.output_buffer("y", (n * rows).div_ceil(2));
            let entries = kernels.matmul_f16(&gw, &x, &y, n).unwrap().entry_points();
            assert!(
                entries.contains(&copy) && entries.contains(&"gemv_lanes"),
                "k = {k}, n = {n}, {config:?}: {entries:?}"
            );
        }
    }
}

#[test]
fn f16_operands_are_checked() {
    let ctx = ctx();
    let kernels = Kernels::new(&ctx.device, Format::Q4_0).unwrap();
    let (rows, k) = (16, 64);
    let gw = common::random_weight(Format::Q4_0, rows, k, 1);
    if !has_f16(ctx) {
        let x = ctx.output_buffer("x", k);
        let r = kernels.matmul_f16(&gw, &x, &x, 1);
        assert!(matches!(r, Err(Error::DeviceLimit(_))), "{r:?}");
        return;
    }
    let n = 3;
    // x for 3 rows of f16 is 3 * 64 * 2 bytes: one row short fails, as does a short y.
    let x_short = ctx.output_buffer("x", (n - 1) * k / 2);
    let x = ctx.output_buffer("x", n * k / 2);
    let y = ctx.output_buffer("y", n * rows / 2);
    let y_short = ctx.output_buffer("y", n * rows / 2 - 1);
    assert!(kernels.matmul_f16(&gw, &x, &y, n).is_ok());
    for r in [
        kernels.matmul_f16(&gw, &x_short, &y, n),
        kernels.matmul_f16(&gw, &x, &y_short, n),
        kernels.matmul_f16(&gw, &x, &y, 0),
    ] {
        assert!(matches!(r, Err(Error::Shape(_))), "{r:?}");
    }
    // An odd output count needs its last word whole: 3 x 5 f16 outputs take 32 bytes.
    let gw5 = common::random_weight(Format::Q4_0, 5, k, 2);
    assert!(kernels
        .matmul_f16(&gw5, &x, &ctx.output_buffer("y", 8), n)
        .is_ok());
    let r = kernels.run_matmul_f16(ctx, &gw, &[f16::ZERO; 10], 1);
    assert!(matches!(r, Err(Error::Shape(_))), "{r:?}");
}

/// CPU adapters emulate f16, so the device preference stays f32 there.
#[test]
fn f16_is_preferred_only_off_cpu_adapters_with_the_feature() {
    let ctx = ctx();
    let want = if ctx.is_cpu() || !ActType::F16.supported_by(&ctx.device) {
        ActType::F32
    } else {
        ActType::F16
    };
    assert_eq!(ActType::preferred_for(&ctx.device), want);
    assert_eq!(KernelConfig::for_device(&ctx.device).act, want);
    let kernels = Kernels::new(&ctx.device, Format::Q8_0).unwrap();
    assert_eq!(kernels.preferred_act(), want);
}
