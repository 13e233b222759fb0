//! GPU fake quantization (QAT) against the CPU reference in `wgquant::quantize::fake_quant`:
//! every bit width, group size and symmetry; outputs poisoned first and bound between guard
//! regions that must survive; a group count that leaves a partial workgroup.
//!
//! Held to: forward output and derived params bit for bit (lavapipe divides correctly
//! rounded; see `src/gpu/fake_quant.rs` for other devices), the straight-through gradient
//! bit for bit (it is `grad_y` or 0), the LSQ scale gradient within
//! `LSQ_REL * g * sum |grad_y * term|` of the f64 reference.

mod common;

#[path = "../examples/qat.rs"]
#[allow(dead_code)]
mod qat;

use common::ctx;
use wgquant::gpu::{params_from_f32, params_to_f32, FakeQuant, ParamsMode};
use wgquant::quantize::fake_quant::{self, FakeQuantConfig, GroupParams};
use wgquant::rng::Rng;
use wgquant::verify::{guarded_buffer, guarded_payload, read_guarded};
use wgquant::{Error, QuantizedTensor};

/// Relative bound of the GPU's f32 sequential LSQ sum against the CPU's f64 one.
const LSQ_REL: f64 = 1e-5;

fn configs() -> Vec<FakeQuantConfig> {
    let mut v = Vec::new();
    for bits in [4, 8] {
        for group in [32, 64, 128] {
            for asym in [false, true] {
                v.push(FakeQuantConfig::new(bits, group, asym));
            }
        }
    }
    v
}

/// 67 groups (one full workgroup of 64 plus a tail) of normal values, with an all-zero group,
/// an all-positive one, an all-negative one and a tiny one (subnormal f16 scale).
fn test_values(cfg: FakeQuantConfig, seed: u64) -> Vec<f32> {
    let g = cfg.group;
    let mut x = Rng::new(seed).normal_vec(67 * g);
    x[..g].iter_mut().for_each(|v| *v = 0.0);
    x[g..2 * g].iter_mut().for_each(|v| *v = v.abs() + 0.5);
    x[2 * g..3 * g].iter_mut().for_each(|v| *v = -v.abs() - 0.5);
    x[3 * g..4 * g].iter_mut().for_each(|v| *v *= 1e-5);
    x
}

fn same_bits(a: &[f32], b: &[f32]) -> Option<usize> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x.to_bits() != y.to_bits())
}

#[test]
fn forward_with_derived_params_matches_the_cpu_bit_for_bit() {
    let ctx = ctx();
    for cfg in configs() {
        let x = test_values(cfg, 11);
        let groups = x.len() / cfg.group;
        let (want, want_p) = fake_quant::forward_derived(cfg, &x).unwrap();
        let fq = FakeQuant::new(&ctx.device, cfg).unwrap();
        let xb = ctx.storage_buffer("x", &x);
        let pb = guarded_buffer(ctx, 2 * groups);
        let yb = guarded_buffer(ctx, x.len());
        let op = fq
            .forward(
                &xb,
                guarded_payload(&pb),
                guarded_payload(&yb),
                x.len(),
                ParamsMode::Derive,
            )
            .unwrap();
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        op.encode(&mut enc);
        ctx.queue.submit([enc.finish()]);
        let (y, y_ok) = read_guarded(ctx, &yb, x.len()).unwrap();
        let (p, p_ok) = read_guarded(ctx, &pb, 2 * groups).unwrap();
        assert!(y_ok && p_ok, "{cfg:?}: guard overwritten");
        assert_eq!(
            same_bits(&p, &params_to_f32(&want_p)),
            None,
            "{cfg:?} params"
        );
        if let Some(i) = same_bits(&y, &want) {
            panic!("{cfg:?}: y[{i}] = {} vs CPU {}", y[i], want[i]);
        }
        // ... which is also the int format's real quantization.
        let real = QuantizedTensor::quantize(cfg.format(), &x, groups, cfg.group)
            .unwrap()
            .dequantize();
        assert_eq!(same_bits(&y, &real), None, "{cfg:?} vs real quantization");
    }
}

/// Given params, with values on exact rounding ties (half away from zero, not to even) and
/// beyond both ends of the range.
#[test]
fn forward_with_given_params_rounds_ties_away_and_clamps() {
    let ctx = ctx();
    for cfg in configs() {
        let groups = 3;
        let (qmin, qmax) = cfg.qrange();
        let mut rng = Rng::new(5);
        let params: Vec<GroupParams> = (0..groups)
            .map(|g| GroupParams {
                s: 0.125 * (g + 1) as f32,
                z: if cfg.asym {
                    (qmax / 2.0 + g as f32).round()
                } else {
                    0.0
                },
            })
            .collect();
        let x: Vec<f32> = (0..groups * cfg.group)
            .map(|i| {
                let p = params[i / cfg.group];
                let span = qmax - qmin + 6.0;
                // codes from below qmin - 3 to above qmax + 3, on ties every other value
                let c = match i % cfg.group {
                    0 => qmax + 2.0,
                    1 => qmin - 2.0,
                    _ => qmin - 3.0 + (rng.uniform() as f32 * span).floor(),
                };
                let tie = if i % 2 == 0 { 0.5 } else { 0.0 };
                let sign = if c - p.z < 0.0 { -1.0 } else { 1.0 };
                p.s * (c - p.z + sign * tie)
            })
            .collect();
        let want = fake_quant::forward(cfg, &x, &params).unwrap();
        let fq = FakeQuant::new(&ctx.device, cfg).unwrap();
        let (y, p) = fq.run_forward(ctx, &x, Some(&params)).unwrap();
        assert_eq!(p, params, "{cfg:?}: given params must be left alone");
        if let Some(i) = same_bits(&y, &want) {
            panic!("{cfg:?}: y[{i}] = {} vs CPU {} (x {})", y[i], want[i], x[i]);
        }
        assert!(y.iter().any(|&v| v == params[0].s * (qmax - params[0].z)));
        assert!(y.iter().any(|&v| v == params[0].s * (qmin - params[0].z)));
    }
}

#[test]
fn backward_matches_the_cpu_ste_exactly_and_lsq_within_bound() {
    let ctx = ctx();
    for cfg in configs() {
        let x = test_values(cfg, 21);
        let groups = x.len() / cfg.group;
        // Shrink the derived scales so that a share of each group clamps.
        let params: Vec<GroupParams> = fake_quant::group_params(cfg, &x)
            .unwrap()
            .into_iter()
            .map(|p| GroupParams {
                s: p.s * 0.7,
                z: p.z,
            })
            .collect();
        let gy = Rng::new(22).normal_vec(x.len());
        let want = fake_quant::backward(cfg, &x, &params, &gy, true).unwrap();
        let clamped = want.grad_x.iter().filter(|&&v| v == 0.0).count();
        assert!(
            clamped > x.len() / 50,
            "{cfg:?}: too few clamped ({clamped})"
        );
        let fq = FakeQuant::new(&ctx.device, cfg).unwrap();
        let xb = ctx.storage_buffer("x", &x);
        let pb = ctx.storage_buffer("params", &params_to_f32(&params));
        let gyb = ctx.storage_buffer("gy", &gy);
        let gxb = guarded_buffer(ctx, x.len());
        let gsb = guarded_buffer(ctx, groups);
        let op = fq
            .backward(
                &xb,
                &pb,
                &gyb,
                guarded_payload(&gxb),
                Some(guarded_payload(&gsb)),
                x.len(),
            )
            .unwrap();
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        op.encode(&mut enc);
        ctx.queue.submit([enc.finish()]);
        let (gx, gx_ok) = read_guarded(ctx, &gxb, x.len()).unwrap();
        let (gs, gs_ok) = read_guarded(ctx, &gsb, groups).unwrap();
        assert!(gx_ok && gs_ok, "{cfg:?}: guard overwritten");
        if let Some(i) = same_bits(&gx, &want.grad_x) {
            panic!("{cfg:?}: grad_x[{i}] = {} vs CPU {}", gx[i], want.grad_x[i]);
        }
        // The bound: relative to g * sum |grad_y * term| of the group.
        let (qmin, qmax) = cfg.qrange();
        let gscale = cfg.lsq_grad_scale() as f64;
        let mut worst = 0.0f64;
        for (g, (&got, &exp)) in gs.iter().zip(want.grad_s.as_ref().unwrap()).enumerate() {
            assert!(got.is_finite(), "{cfg:?}: grad_s[{g}] = {got}");
            let p = params[g];
            let mag: f64 = (0..cfg.group)
                .map(|i| {
                    let j = g * cfg.group + i;
                    if p.s == 0.0 {
                        return 0.0;
                    }
                    let t = x[j] / p.s;
                    let c = t.round() + p.z;
                    let term = if c < qmin {
                        qmin - p.z
                    } else if c > qmax {
                        qmax - p.z
                    } else {
                        t.round() - t
                    };
                    (gy[j] * term).abs() as f64
                })
                .sum::<f64>()
                * gscale;
            let err = (got as f64 - exp as f64).abs();
            assert!(
                err <= LSQ_REL * mag + 1e-30,
                "{cfg:?}: grad_s[{g}] = {got} vs {exp} (scale {mag})"
            );
            if mag > 0.0 {
                worst = worst.max(err / mag);
            }
        }
        eprintln!("{cfg:?}: LSQ grad_s worst error / (g sum |terms|) = {worst:.2e}");
        // Without LSQ the one-line helper gives the same mask.
        let b = fq.run_backward(ctx, &x, &params, &gy, false).unwrap();
        assert!(b.grad_s.is_none());
        assert_eq!(same_bits(&b.grad_x, &want.grad_x), None);
    }
}

#[test]
fn bad_operands_are_errors() {
    let ctx = ctx();
    let cfg = FakeQuantConfig::new(4, 32, false);
    let fq = FakeQuant::new(&ctx.device, cfg).unwrap();
    let b = ctx.output_buffer("b", 1024);
    let small = ctx.output_buffer("small", 1);
    let m = ParamsMode::Derive;
    assert!(matches!(
        fq.forward(&b, &b, &b, 33, m),
        Err(Error::Shape(_))
    ));
    assert!(matches!(fq.forward(&b, &b, &b, 0, m), Err(Error::Shape(_))));
    assert!(matches!(
        fq.forward(&b, &small, &b, 64, m),
        Err(Error::Shape(_))
    ));
    let unaligned = wgquant::gpu::Operand {
        buffer: &b,
        offset: 4,
    };
    assert!(matches!(
        fq.forward(&b, &b, unaligned, 64, m),
        Err(Error::InvalidArgument(_))
    ));
    assert!(fq
        .backward(&b, &b, &b, &b, Some((&small).into()), 128)
        .is_err());
    assert!(FakeQuant::new(&ctx.device, FakeQuantConfig::new(5, 32, false)).is_err());
    assert!(fq
        .run_forward(ctx, &[0.0; 64], Some(&[GroupParams::default()]))
        .is_err());
    assert_eq!(
        params_from_f32(&[1.0, 2.0]),
        vec![GroupParams { s: 1.0, z: 2.0 }]
    );
}

/// A shortened run of `examples/qat.rs`: training through the GPU fake quantizer learns, and
/// the QAT network's fake-quantized weights are exactly its real int4 weights.
#[test]
fn qat_example_short_run() {
    let r = qat::run(ctx(), &qat::Settings::short()).unwrap();
    eprintln!("{r:?}");
    let chance = 1.0 / qat::CLASSES as f64;
    assert!(r.float_acc > 2.0 * chance, "{r:?}");
    assert!(r.qat_real_acc > 2.0 * chance, "{r:?}");
    assert_eq!(
        r.qat_fake_acc, r.qat_real_acc,
        "fake and real int4 must agree"
    );
}
