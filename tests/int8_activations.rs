//! W8A8 / W4A8 on the GPU against the CPU reference in `wgquant::quantize::activation`:
//! the activation codes and scales, every `i32` group accumulator (exactly), and the float
//! result (against the integer reference, and against f64 over dequantized weights and
//! unquantized x), with poisoned outputs between guard regions, tails (batches 1..=9 and
//! beyond, rows not a multiple of the workgroup's 4, k one block), and static scales from
//! every observer.

mod common;

use common::ctx;
use wgquant::format::reference::{matmul_f64, nmse};
use wgquant::format::{Format, IntFormat};
use wgquant::gpu::{ActQuant, GpuWeight, Int8Kernels};
use wgquant::quantize::activation::{
    int_accumulators, int_matmul_from_acc, observe, quantize_dynamic, quantize_static,
    quantize_value, Granularity, IntWeights, Observer, QuantizedActivations, ACT_GROUP,
};
use wgquant::quantize::Activations;
use wgquant::rng::Rng;
use wgquant::verify::{guarded_buffer, guarded_payload, read_guarded};
use wgquant::{Error, QuantizedTensor};

/// The float result against the integer reference from the GPU's own accumulators: only
/// the f32 sum over groups (and lanes) differs.
const INT_REF_NMSE_MAX: f64 = 1e-10;
/// Dynamic int8 activations, Gaussian x: against f64 over dequantized weights and f32 x.
const DYNAMIC_NMSE_MAX: f64 = 1e-3;
/// Static scales from Gaussian calibration data (clipping adds error).
const STATIC_NMSE_MAX: f64 = 3e-3;

fn formats() -> Vec<Format> {
    vec![
        Format::Q8_0,
        Format::Int(IntFormat::new(8, 32, false)),
        Format::Int(IntFormat::new(8, 128, false)),
        Format::Int(IntFormat::new(4, 32, false)),
        Format::Int(IntFormat::new(4, 64, false)),
        Format::Int(IntFormat::new(4, 128, false)),
    ]
}

struct Outcome {
    /// Against the f64 reference over dequantized weights and unquantized x.
    nmse_float: f64,
}

fn i32s(b: &[u8]) -> Vec<i32> {
    b.chunks_exact(4)
        .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// Run one case and check everything that must hold exactly; return the float error.
fn run_case(
    kernels: &Int8Kernels,
    rows: usize,
    k: usize,
    n: usize,
    act: &ActQuant,
    seed: u64,
) -> Outcome {
    let ctx = ctx();
    let format = kernels.format();
    let what = format!("{format} rows {rows} k {k} n {n} {act:?}");
    let mut rng = Rng::new(seed);
    let wf = rng.normal_vec(rows * k);
    let x = rng.normal_vec(n * k);
    let q = QuantizedTensor::quantize(format, &wf, rows, k).unwrap();
    let w = IntWeights::from_tensor(&q).unwrap();
    let want_act = match act {
        ActQuant::Dynamic => quantize_dynamic(&x, n, k).unwrap(),
        ActQuant::Static(s) => quantize_static(&x, n, k, s).unwrap(),
    };
    let gw = GpuWeight::upload(ctx, &q).unwrap();
    let xb = ctx.storage_buffer("x", &x);
    let yb = guarded_buffer(ctx, n * rows);
    let op = kernels
        .matmul_debug(&gw, &xb, guarded_payload(&yb), n, act)
        .unwrap();
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    op.encode(&mut enc);
    ctx.queue.submit([enc.finish()]);
    let (y, intact) = read_guarded(ctx, &yb, n * rows).unwrap();
    assert!(intact, "{what}: guard damaged");
    assert!(y.iter().all(|v| v.is_finite()), "{what}: unwritten output");

    // Activation codes and scales: exactly the CPU's.
    let groups = k / ACT_GROUP;
    let codes: Vec<i8> = ctx
        .read_bytes(op.activation_codes(), n * k)
        .unwrap()
        .into_iter()
        .map(|b| b as i8)
        .collect();
    let scales = ctx.read_f32(op.activation_scales(), n * groups).unwrap();
    let got_act = QuantizedActivations {
        n,
        k,
        codes,
        scales,
    };
    // Scales: the CPU's up to the GPU's division (Vulkan allows 2.5 ulp for x / y; an H100
    // is 1 ulp off at times, lavapipe exact).
    assert_eq!(got_act.scales.len(), want_act.scales.len(), "{what}");
    for (i, (&g, &c)) in got_act.scales.iter().zip(&want_act.scales).enumerate() {
        let ulps = (g.to_bits() as i64 - c.to_bits() as i64).abs();
        assert!(
            ulps <= 3,
            "{what}: activation scale {i} is {g}, the CPU's {c}"
        );
    }
    // Codes: the CPU's rule applied with the GPU's scales, exactly, except that a quotient
    // within division error of a half-way point may round either way.
    for (i, (&got, &xv)) in got_act.codes.iter().zip(&x).enumerate() {
        let s = got_act.scales[i / ACT_GROUP];
        let want = quantize_value(xv, s);
        let near_tie = s != 0.0 && ((xv / s).abs().fract() - 0.5).abs() < 1e-4;
        assert!(
            got == want || near_tie && (got as i32 - want as i32).abs() == 1,
            "{what}: activation code {i} is {got}, expected {want} (x {xv}, scale {s})"
        );
    }

    // Every i32 accumulator: exactly the CPU's for the GPU's codes.
    let acc = i32s(
        &ctx.read_bytes(op.accumulators().unwrap(), n * rows * groups * 4)
            .unwrap(),
    );
    let want_acc = int_accumulators(&w, &got_act).unwrap();
    if let Some(i) = (0..acc.len()).find(|&i| acc[i] != want_acc[i]) {
        panic!(
            "{what}: accumulator {i} (token {}, row {}, group {}) is {}, expected {}",
            i / groups / rows,
            i / groups % rows,
            i % groups,
            acc[i],
            want_acc[i]
        );
    }

    // The float result: the integer reference up to f32 summation.
    let int_ref = int_matmul_from_acc(&w, &got_act, &want_acc);
    let e = nmse(&int_ref, &y);
    assert!(
        e <= INT_REF_NMSE_MAX,
        "{what}: NMSE {e:e} vs integer reference"
    );
    let float_ref = matmul_f64(&q.dequantize(), rows, k, &x, n);
    Outcome {
        nmse_float: nmse(&float_ref, &y),
    }
}

#[test]
fn dynamic_int8_activations_are_exact_with_tails() {
    let ctx = ctx();
    let mut worst = 0f64;
    let mut cases = 0;
    for (fi, format) in formats().into_iter().enumerate() {
        let kernels = Int8Kernels::new(&ctx.device, format).unwrap();
        let km = format.k_multiple();
        let ks = [km, 3 * km, (512 / km).max(1) * km];
        // Every batch (and so every GEMV column count) on Q8_0; the column logic is the same
        // for every format, so the others run the ends (1 column; 8 columns twice over).
        let batches: Vec<usize> = if format == Format::Q8_0 {
            (1..=9).chain([17]).collect()
        } else {
            vec![1, 9]
        };
        for (i, n) in batches.into_iter().enumerate() {
            let rows = [1, 7, 67, 130][(i + fi) % 4];
            let k = ks[(i + fi) % 3];
            let o = run_case(
                &kernels,
                rows,
                k,
                n,
                &ActQuant::Dynamic,
                (fi * 100 + i) as u64,
            );
            // Tiny cases (one block of k) have few terms: the bound is for real shapes.
            if k >= 256 {
                worst = worst.max(o.nmse_float);
                assert!(
                    o.nmse_float <= DYNAMIC_NMSE_MAX,
                    "{format} rows {rows} k {k} n {n}: NMSE {:e}",
                    o.nmse_float
                );
            }
            cases += 1;
        }
    }
    eprintln!("dynamic W8A8/W4A8: {cases} cases exact; worst NMSE vs float reference {worst:.3e}");
}

#[test]
fn static_scales_from_every_observer() {
    let ctx = ctx();
    let (rows, k, n, samples) = (67, 256, 5, 64);
    let calib = Activations::new(samples, k, Rng::new(77).normal_vec(samples * k)).unwrap();
    for format in [Format::Q8_0, Format::Int(IntFormat::new(4, 128, false))] {
        let kernels = Int8Kernels::new(&ctx.device, format).unwrap();
        for observer in [
            Observer::MinMax,
            Observer::Percentile(99.99),
            Observer::Percentile(99.0),
            Observer::Mse,
        ] {
            for g in [Granularity::PerTensor, Granularity::PerChannelGroup] {
                let s = observe(&calib, observer, g).unwrap();
                let o = run_case(&kernels, rows, k, n, &ActQuant::Static(s), 5);
                eprintln!(
                    "static {format} {observer:?} {g:?}: NMSE vs float reference {:.3e}",
                    o.nmse_float
                );
                assert!(
                    o.nmse_float <= STATIC_NMSE_MAX,
                    "{format} {observer:?} {g:?}: NMSE {:e}",
                    o.nmse_float
                );
            }
        }
    }
}

#[test]
fn run_matmul_agrees_and_bad_inputs_are_refused() {
    let ctx = ctx();
    let (rows, k, n) = (9, 64, 2);
    let format = Format::Int(IntFormat::new(8, 32, false));
    let q = QuantizedTensor::quantize(format, &Rng::new(1).normal_vec(rows * k), rows, k).unwrap();
    let x = Rng::new(2).normal_vec(n * k);
    let gw = GpuWeight::upload(ctx, &q).unwrap();
    let kernels = Int8Kernels::new(&ctx.device, format).unwrap();
    let y = kernels
        .run_matmul(ctx, &gw, &x, n, &ActQuant::Dynamic)
        .unwrap();
    let w = IntWeights::from_tensor(&q).unwrap();
    let a = quantize_dynamic(&x, n, k).unwrap();
    let want = int_matmul_from_acc(&w, &a, &int_accumulators(&w, &a).unwrap());
    assert!(nmse(&want, &y) <= INT_REF_NMSE_MAX);

    assert!(matches!(
        Int8Kernels::new(&ctx.device, Format::Q4_0),
        Err(Error::UnsupportedFormat(_))
    ));
    assert!(matches!(
        Int8Kernels::new(&ctx.device, Format::Int(IntFormat::new(4, 32, true))),
        Err(Error::UnsupportedFormat(_))
    ));
    let other = QuantizedTensor::quantize(Format::Q8_0, &vec![0.0; rows * k], rows, k).unwrap();
    let gw_other = GpuWeight::upload(ctx, &other).unwrap();
    assert!(kernels
        .run_matmul(ctx, &gw_other, &x, n, &ActQuant::Dynamic)
        .is_err());
    let wrong = ActQuant::Static(wgquant::quantize::activation::StaticScales::PerGroup(vec![
        1.0;
        3
    ]));
    assert!(kernels.run_matmul(ctx, &gw, &x, n, &wrong).is_err());
    // All-zero activations: zero scale, zero codes, zero output (no NaN).
    let y0 = kernels
        .run_matmul(ctx, &gw, &vec![0.0; n * k], n, &ActQuant::Dynamic)
        .unwrap();
    assert!(y0.iter().all(|&v| v == 0.0));
}
