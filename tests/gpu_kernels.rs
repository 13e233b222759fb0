//! Every kernel of every format against the CPU reference (f64 accumulation over the
//! dequantized weights), on whatever adapter the machine has (lavapipe on CI): the suite
//! in `wgquant::verify` (poisoned outputs, guard regions, NaN rejected, tails), plus
//! split bindings, a weight over lavapipe's binding limit, and bad operands.

mod common;

use common::ctx;
use wgquant::format::reference::{matmul_f64, nmse};
use wgquant::format::Format;
use wgquant::gpu::{
    kernel_for_batch, plane_row_bytes, GpuWeight, KernelConfig, KernelKind, Kernels, Operand,
};
use wgquant::rng::Rng;
use wgquant::verify::{self, MATMUL_NMSE_MAX};
use wgquant::{Error, QuantizedTensor};

#[test]
fn every_kernel_of_every_format_matches_the_reference() {
    let mut failures = Vec::new();
    let mut kinds = std::collections::HashSet::new();
    for format in Format::all() {
        let results = verify::run_format(ctx(), format, |_| {}).unwrap();
        let config = KernelConfig::for_device(&ctx().device);
        assert_eq!(
            results.len(),
            verify::suite_len(&ctx().device, format, &config)
        );
        for r in results {
            kinds.insert(r.kernel);
            if !r.passed() {
                failures.push(format!("{r:?}"));
            }
        }
    }
    common::assert_no_failures(&failures);
    assert_eq!(
        kinds.len(),
        3,
        "the suite must exercise gemv, gemm and dequantize"
    );
}

#[test]
fn the_suite_catches_wrong_results_unwritten_outputs_and_guard_damage() {
    let ctx = ctx();
    let kernels = Kernels::new(&ctx.device, Format::Q4_0).unwrap();
    // A batch of 3 computed into a buffer sized for 4: the fourth row stays poisoned (NaN).
    let (rows, k) = (16, 64);
    let gw = common::random_weight(Format::Q4_0, rows, k, 1);
    let x = ctx.storage_buffer("x", &Rng::new(2).normal_vec(4 * k));
    let yb = verify::guarded_buffer(ctx, 4 * rows);
    let op = kernels
        .matmul(&gw, &x, verify::guarded_payload(&yb), 3)
        .unwrap();
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    op.encode(&mut enc);
    ctx.queue.submit([enc.finish()]);
    let (got, intact) = verify::read_guarded(ctx, &yb, 4 * rows).unwrap();
    assert!(intact);
    assert!(got[..3 * rows].iter().all(|v| v.is_finite()));
    assert!(
        got[3 * rows..].iter().all(|v| v.is_nan()),
        "poison must survive where nothing wrote"
    );
    // Writing at offset 0 lands on the leading guard.
    let op = kernels.matmul(&gw, &x, &yb, 1).unwrap();
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    op.encode(&mut enc);
    ctx.queue.submit([enc.finish()]);
    let (_, intact) = verify::read_guarded(ctx, &yb, 4 * rows).unwrap();
    assert!(!intact, "a write into the guard must be detected");
}

#[test]
fn gemv_and_gemm_are_chosen_by_batch() {
    assert_eq!(kernel_for_batch(1), KernelKind::Gemv);
    assert_eq!(kernel_for_batch(8), KernelKind::Gemv);
    assert_eq!(kernel_for_batch(9), KernelKind::Gemm);
}

#[test]
fn weights_split_across_bindings_still_match() {
    // A small binding limit forces chunks of 64 rows: 200 rows give 64, 64, 64, 8.
    let ctx = ctx();
    for format in [Format::Q4_0, Format::Q8_0, Format::Q4_1, Format::F32] {
        let (rows, k) = (200, 256);
        let (code_bytes, _) = plane_row_bytes(format, k);
        let q =
            QuantizedTensor::quantize(format, &Rng::new(3).normal_vec(rows * k), rows, k).unwrap();
        let gw = GpuWeight::upload_with_max_binding(ctx, &q, (64 * code_bytes) as u64).unwrap();
        assert_eq!(gw.chunks().len(), 4, "{format}");
        let kernels = Kernels::new(&ctx.device, format).unwrap();
        let cpu = q.dequantize();
        let gpu = kernels.run_dequantize(ctx, &gw).unwrap();
        let want: Vec<f64> = cpu.iter().map(|&v| v as f64).collect();
        assert!(
            nmse(&want, &gpu) <= verify::DEQUANT_NMSE_MAX,
            "{format} dequantize"
        );
        for n in [1, 5, 12] {
            let x = Rng::new(n as u64).normal_vec(n * k);
            let got = kernels.run_matmul(ctx, &gw, &x, n).unwrap();
            let e = nmse(&matmul_f64(&cpu, rows, k, &x, n), &got);
            assert!(e <= MATMUL_NMSE_MAX, "{format} n={n} split: NMSE {e:e}");
        }
    }
}

/// On CPU adapters weights get a texture copy and the GEMV reads textures (x is copied into
/// uniform buffers first, as many columns each as fit, where a group of columns per
/// invocation fits one, else into a texture or, with `texture_x_storage`, a storage
/// buffer); elsewhere, or with the variant switched off, the buffer GEMV runs.
#[test]
fn the_texture_gemv_runs_on_cpu_adapters_only() {
    let ctx = ctx();
    let (rows, k, n) = (40, 64, 3);
    let gw = common::random_weight(Format::Q4_0, rows, k, 5);
    let cpu = ctx.device.adapter_info().device_type == wgpu::DeviceType::Cpu;
    assert_eq!(gw.chunks().iter().all(|c| c.textures.is_some()), cpu);
    let x = ctx.storage_buffer("x", &Rng::new(6).normal_vec(n * k));
    let y = ctx.output_buffer("y", n * rows);
    let kernels = Kernels::new(&ctx.device, Format::Q4_0).unwrap();
    assert_eq!(kernels.config().texture_gemv, cpu);
    let steps = kernels.matmul(&gw, &x, &y, n).unwrap().entry_points();
    if cpu {
        assert_eq!(steps, ["x_to_buffer", "gemv_lanes"]);
        let uniform = ["x_to_buffer", "gemv_lanes"];
        let texture = ["x_to_texture", "gemv_lanes"];
        // x of at most 64 KiB (n x k f32) is read from a uniform buffer, larger x from a
        // texture; q4_0 runs 4 columns per invocation from 5 on, each further block with
        // its own copy (columns after the last whole group in a block of their own), f32 up
        // to 8. With `texture_x_storage` every format runs up to 8 columns and larger x
        // comes from a storage buffer (copied by x_to_buffer too): the last column, blocks.
        // Every plan against the reference.
        let cases = [
            (Format::Q4_0, 4096, 4, uniform.to_vec(), 1),
            (Format::Q4_0, 4096, 5, uniform.repeat(2), 1),
            (Format::Q4_0, 4096, 8, uniform.repeat(2), 1),
            (Format::F32, 4096, 5, texture.to_vec(), 1),
            (Format::Q4_0, 8192, 6, [texture, uniform].concat(), 1),
            // 28 columns per buffer at k = 576: 7 groups of 4, then 12 (3 groups); with
            // groups of 8, 24 and then 16.
            (Format::Q4_0, 576, 40, uniform.repeat(2), 2),
            // Columns after the last whole group: 12 + 1 for q4_0, 8 + 5 for f32 (and for
            // q4_0 in groups of 8).
            (Format::Q4_0, 576, 13, uniform.repeat(2), 2),
            (Format::F32, 576, 13, uniform.repeat(2), 2),
        ];
        for (i, (format, k, n, want_texture, storage_blocks)) in cases.into_iter().enumerate() {
            let gw = common::random_weight(format, 37, k, 7 + i as u64);
            let x = ctx.storage_buffer("x", &Rng::new(8).normal_vec(n * k));
            let y = ctx.output_buffer("y", n * 37);
            for texture_x_storage in [false, true] {
                let config = KernelConfig {
                    texture_x_storage,
                    ..KernelConfig::for_device(&ctx.device)
                };
                let kernels = Kernels::with_config(&ctx.device, format, config).unwrap();
                let steps = kernels.matmul(&gw, &x, &y, n).unwrap().entry_points();
                let want = if texture_x_storage {
                    uniform.repeat(storage_blocks)
                } else {
                    want_texture.clone()
                };
                assert_eq!(steps, want, "{format} k = {k}, n = {n}, {config:?}");
                let r = verify::matmul_case(ctx, &kernels, 37, k, n, 70 + i as u64).unwrap();
                assert!(r.passed(), "{r:?}");
            }
        }
    } else {
        assert!(!steps.contains(&"gemv_lanes"), "{steps:?}");
    }
    let config = KernelConfig {
        texture_gemv: false,
        ..kernels.config()
    };
    let buffers = Kernels::with_config(&ctx.device, Format::Q4_0, config).unwrap();
    let steps = buffers.matmul(&gw, &x, &y, n).unwrap().entry_points();
    assert!(!steps.contains(&"gemv_lanes"), "{steps:?}");
}

/// A 16384 x 16384 Q8_0 weight (~285 MB) is larger than lavapipe's 128 MiB binding limit.
#[test]
fn large_q8_0_weight_over_the_binding_limit() {
    let ctx = ctx();
    let (rows, k) = (16384, 16384);
    let mut rng = Rng::new(11);
    let q = QuantizedTensor::quantize(Format::Q8_0, &rng.normal_vec(rows * k), rows, k).unwrap();
    let gw = GpuWeight::upload(ctx, &q).unwrap();
    let limit = ctx.device.limits().max_storage_buffer_binding_size;
    let (code_row_bytes, _) = plane_row_bytes(Format::Q8_0, k);
    if (code_row_bytes * rows) as u64 > limit {
        assert!(
            gw.chunks().len() > 1,
            "a weight over the limit must be split"
        );
    }
    let kernels = Kernels::new(&ctx.device, Format::Q8_0).unwrap();
    let n = 2;
    let x = rng.normal_vec(n * k);
    let got = kernels.run_matmul(ctx, &gw, &x, n).unwrap();
    let want = matmul_f64(&q.dequantize(), rows, k, &x, n);
    let e = nmse(&want, &got);
    assert!(e <= MATMUL_NMSE_MAX, "large Q8_0: NMSE {e:e}");
}

#[test]
fn bad_operands_are_typed_errors() {
    let ctx = ctx();
    let gw = common::random_weight(Format::Q4_0, 64, 64, 1);
    let kernels = Kernels::new(&ctx.device, Format::Q4_0).unwrap();
    let small = ctx.output_buffer("small", 10);
    let x = ctx.output_buffer("x", 64);
    let y = ctx.output_buffer("y", 128);
    assert!(matches!(
        kernels.matmul(&gw, &x, &small, 1),
        Err(Error::Shape(_))
    ));
    assert!(matches!(
        kernels.matmul(&gw, &x, &y, 2),
        Err(Error::Shape(_))
    ));
    assert!(matches!(
        kernels.matmul(&gw, &x, &y, 0),
        Err(Error::Shape(_))
    ));
    let misaligned = Operand {
        buffer: &y,
        offset: 4,
    };
    assert!(matches!(
        kernels.matmul(&gw, &x, misaligned, 1),
        Err(Error::InvalidArgument(_))
    ));
    let q8 = Kernels::new(&ctx.device, Format::Q8_0).unwrap();
    assert!(matches!(
        q8.matmul(&gw, &x, &y, 1),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        kernels.run_matmul(ctx, &gw, &[0.0; 63], 1),
        Err(Error::Shape(_))
    ));
    assert!(matches!(
        kernels.dequantize(&gw, &small),
        Err(Error::Shape(_))
    ));
}

#[test]
fn gpu_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<wgquant::gpu::GpuContext>();
    check::<GpuWeight>();
    check::<Kernels>();
    check::<wgquant::gpu::Dispatch>();
    check::<QuantizedTensor>();
}
