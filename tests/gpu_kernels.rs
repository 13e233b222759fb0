//! Every kernel of every format against the CPU reference (f64 accumulation over the
//! dequantized weights), on whatever adapter the machine has (lavapipe on CI).
//! Outputs are poisoned first and surrounded by guard regions.

mod common;

use common::*;
use wgquant::format::Format;
use wgquant::gpu::{GpuWeight, KernelKind, Kernels, Operand};
use wgquant::rng::Rng;
use wgquant::{Error, QuantizedTensor};

const NMSE_MAX: f64 = 1e-6;

fn run_case(kernels: &Kernels, format: Format, rows: usize, k: usize, n: usize, seed: u64) {
    let ctx = ctx();
    let mut rng = Rng::new(seed);
    let w = rng.normal_vec(rows * k);
    let x = rng.normal_vec(n * k);
    let q = QuantizedTensor::quantize(format, &w, rows, k).unwrap();
    let want = reference(&q.dequantize(), rows, k, &x, n);
    let gw = GpuWeight::upload(ctx, &q).unwrap();
    let xb = ctx.storage_buffer("x", &x);
    let yb = guarded_output(n * rows);
    let y = Operand {
        buffer: &yb,
        offset: (GUARD * 4) as u64,
    };
    let op = kernels.matmul(&gw, &xb, y, n).unwrap();
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    op.encode(&mut enc);
    ctx.queue.submit([enc.finish()]);
    let what = format!("{format} {:?} m={rows} k={k} n={n}", op.kind());
    let got = read_guarded(&yb, n * rows, &what);
    let e = checked_nmse(&want, &got, &what);
    assert!(e <= NMSE_MAX, "{what}: NMSE {e:.3e} > {NMSE_MAX:e}");
}

/// Shapes with tails: rows not a multiple of the GEMM tile (64), k a small odd multiple of
/// the format's block, and every batch size 1..=9 plus GEMM tails.
fn shapes(format: Format) -> Vec<(usize, usize, usize)> {
    let km = format.k_multiple();
    let ks = [km, 3 * km, (640 / km).max(1) * km + km];
    let mut v = Vec::new();
    for (i, n) in (1..=9).chain([16, 65, 70]).enumerate() {
        let rows = [1, 7, 67, 130][i % 4];
        v.push((rows, ks[i % 3], n));
    }
    v.push((193, ks[2], 3));
    v.push((64, ks[1], 64));
    v
}

#[test]
fn matmul_matches_reference_for_every_format() {
    for (fi, format) in Format::all().into_iter().enumerate() {
        let kernels = Kernels::new(&ctx().device, format).unwrap();
        for (si, (rows, k, n)) in shapes(format).into_iter().enumerate() {
            run_case(&kernels, format, rows, k, n, (fi * 100 + si) as u64);
        }
    }
}

#[test]
fn gemv_and_gemm_are_chosen_by_batch() {
    assert_eq!(wgquant::gpu::kernel_for_batch(1), KernelKind::Gemv);
    assert_eq!(wgquant::gpu::kernel_for_batch(8), KernelKind::Gemv);
    assert_eq!(wgquant::gpu::kernel_for_batch(9), KernelKind::Gemm);
}

#[test]
fn dequantize_matches_cpu_for_every_format() {
    let ctx = ctx();
    for (fi, format) in Format::all().into_iter().enumerate() {
        let kernels = Kernels::new(&ctx.device, format).unwrap();
        let (rows, k) = (67, 3 * format.k_multiple());
        let w = Rng::new(7 + fi as u64).normal_vec(rows * k);
        let q = QuantizedTensor::quantize(format, &w, rows, k).unwrap();
        let want = q.dequantize();
        let gw = GpuWeight::upload(ctx, &q).unwrap();
        let out = guarded_output(rows * k);
        let at = Operand {
            buffer: &out,
            offset: (GUARD * 4) as u64,
        };
        let op = kernels.dequantize(&gw, at).unwrap();
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        op.encode(&mut enc);
        ctx.queue.submit([enc.finish()]);
        let got = read_guarded(&out, rows * k, &format.to_string());
        for (i, (&g, &c)) in got.iter().zip(&want).enumerate() {
            // The GPU may fuse scale * code + offset into one FMA: allow one rounding.
            let tol = 1e-6 * c.abs().max(1e-30);
            assert!(
                (g - c).abs() <= tol,
                "{format}: weight {i}: GPU {g} vs CPU {c}"
            );
        }
    }
}

#[test]
fn weights_split_across_bindings_still_match() {
    // Force chunks of 64 rows by a small binding limit; 200 rows give chunks 64,64,64,8.
    let ctx = ctx();
    for format in [Format::Q4_0, Format::Q8_0, Format::F32] {
        let (rows, k) = (200, 256);
        let (code_bytes, _) = wgquant::gpu::plane_row_bytes(format, k);
        let q = QuantizedTensor::quantize(format, &Rng::new(3).normal_vec(rows * k), rows, k)
            .unwrap();
        let gw = GpuWeight::upload_with_max_binding(ctx, &q, (64 * code_bytes) as u64).unwrap();
        assert_eq!(gw.chunks().len(), 4, "{format}");
        let kernels = Kernels::new(&ctx.device, format).unwrap();
        let dq = kernels.run_dequantize(ctx, &gw).unwrap();
        assert_eq!(dq.len(), rows * k);
        let cpu = q.dequantize();
        for (g, c) in dq.iter().zip(&cpu) {
            assert!((g - c).abs() <= 1e-6 * c.abs().max(1e-30), "{format} dequant {g} vs {c}");
        }
        for n in [1, 5, 12] {
            let x = Rng::new(n as u64).normal_vec(n * k);
            let got = kernels.run_matmul(ctx, &gw, &x, n).unwrap();
            let want = reference(&cpu, rows, k, &x, n);
            let e = checked_nmse(&want, &got, "split");
            assert!(e <= NMSE_MAX, "{format} n={n} split: NMSE {e:e}");
        }
    }
}

/// A 16384 x 16384 Q8_0 weight (~285 MB) is larger than lavapipe's 128 MiB binding limit.
#[test]
fn large_q8_0_weight_over_the_binding_limit() {
    let ctx = ctx();
    let (rows, k) = (16384, 16384);
    let mut rng = Rng::new(11);
    let w = rng.normal_vec(rows * k);
    let q = QuantizedTensor::quantize(Format::Q8_0, &w, rows, k).unwrap();
    drop(w);
    let gw = GpuWeight::upload(ctx, &q).unwrap();
    let limit = ctx.device.limits().max_storage_buffer_binding_size;
    let (code_row_bytes, _) = wgquant::gpu::plane_row_bytes(Format::Q8_0, k);
    if (code_row_bytes * rows) as u64 > limit {
        assert!(gw.chunks().len() > 1, "a weight over the limit must be split");
    }
    let kernels = Kernels::new(&ctx.device, Format::Q8_0).unwrap();
    let n = 2;
    let x = rng.normal_vec(n * k);
    let got = kernels.run_matmul(ctx, &gw, &x, n).unwrap();
    let want = reference(&q.dequantize(), rows, k, &x, n);
    let e = checked_nmse(&want, &got, "large q8_0");
    assert!(e <= NMSE_MAX, "large Q8_0: NMSE {e:e}");
}

#[test]
fn bad_operands_are_typed_errors() {
    let ctx = ctx();
    let q = QuantizedTensor::quantize(Format::Q4_0, &Rng::new(1).normal_vec(64 * 64), 64, 64)
        .unwrap();
    let gw = GpuWeight::upload(ctx, &q).unwrap();
    let kernels = Kernels::new(&ctx.device, Format::Q4_0).unwrap();
    let small = ctx.output_buffer("small", 10);
    let x = ctx.output_buffer("x", 64);
    // y too small
    assert!(matches!(kernels.matmul(&gw, &x, &small, 1), Err(Error::Shape(_))));
    // x too small for n = 2
    let y = ctx.output_buffer("y", 128);
    assert!(matches!(kernels.matmul(&gw, &x, &y, 2), Err(Error::Shape(_))));
    // n = 0
    assert!(matches!(kernels.matmul(&gw, &x, &y, 0), Err(Error::Shape(_))));
    // misaligned output offset
    let off = Operand {
        buffer: &y,
        offset: 4,
    };
    assert!(matches!(
        kernels.matmul(&gw, &x, off, 1),
        Err(Error::InvalidArgument(_))
    ));
    // kernels of another format
    let k8 = Kernels::new(&ctx.device, Format::Q8_0).unwrap();
    assert!(matches!(k8.matmul(&gw, &x, &y, 1), Err(Error::InvalidArgument(_))));
    // run_matmul with x of the wrong length
    assert!(matches!(
        kernels.run_matmul(ctx, &gw, &[0.0; 63], 1),
        Err(Error::Shape(_))
    ));
}
