//! wgquant inside an engine: the caller's own device (default features and limits), kernels
//! prepared once and encoded many times per frame into the caller's encoder and compute
//! pass, output landing at an offset in the caller's buffer, and no per-frame allocation.

use wgquant::format::reference::{matmul_f64, nmse};
use wgquant::gpu::{GpuContext, GpuWeight, Kernels, Operand};
use wgquant::rng::Rng;
use wgquant::{Format, QuantizedTensor};

/// A device made the way an engine might: its own instance, no optional features, default
/// limits (128 MiB bindings, 16 KiB workgroup memory).
fn callers_device() -> (wgpu::Device, wgpu::Queue) {
    let adapter = wgquant::gpu::choose_adapter(&wgquant::gpu::DeviceOptions::from_env())
        .unwrap_or_else(|e| panic!("{e}"));
    pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("engine"),
        required_features: wgpu::Features::empty(),
        required_limits: wgpu::Limits::default(),
        ..Default::default()
    }))
    .unwrap()
}

fn counts(device: &wgpu::Device) -> [isize; 4] {
    let c = device.get_internal_counters();
    [
        c.hal.buffers.read(),
        c.hal.bind_groups.read(),
        c.hal.compute_pipelines.read(),
        c.hal.shader_modules.read(),
    ]
}

#[test]
fn frames_reuse_prepared_dispatches_without_allocating() {
    let (device, queue) = callers_device();
    let ctx = GpuContext::from_device(device.clone(), queue.clone());
    let (rows, k) = (96, 256);
    let mut rng = Rng::new(9);
    let q = QuantizedTensor::quantize(Format::Q4_0, &rng.normal_vec(rows * k), rows, k).unwrap();
    let weight = GpuWeight::upload(&ctx, &q).unwrap();
    let kernels = Kernels::new(&device, Format::Q4_0).unwrap();
    let x_small = rng.normal_vec(k);
    let x_batch = rng.normal_vec(12 * k);
    let xs = ctx.storage_buffer("x1", &x_small);
    let xb = ctx.storage_buffer("x12", &x_batch);
    // The engine's own output buffer: results land 256 bytes in, then at 256 + 1024 bytes.
    let out = ctx.output_buffer("engine output", 64 + 256 + rows * 13);
    let gemv = kernels
        .matmul(
            &weight,
            &xs,
            Operand {
                buffer: &out,
                offset: 256,
            },
            1,
        )
        .unwrap();
    let gemm = kernels
        .matmul(
            &weight,
            &xb,
            Operand {
                buffer: &out,
                offset: 256 + 1024,
            },
            12,
        )
        .unwrap();
    let frame = |n_dispatches: usize| {
        let mut encoder = device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            for _ in 0..n_dispatches {
                gemv.encode_in_pass(&mut pass);
                gemm.encode_in_pass(&mut pass);
            }
        }
        queue.submit([encoder.finish()]);
        device.poll(wgpu::PollType::wait_indefinitely()).unwrap();
    };
    frame(1); // warm-up
    let before = counts(&device);
    for _ in 0..20 {
        frame(3);
    }
    assert_eq!(
        counts(&device),
        before,
        "[buffers, bind groups, pipelines, shader modules]"
    );
    // The counters are live: one more buffer shows.
    assert!(
        before[0] > 0 && before[2] > 0,
        "counters must be enabled: {before:?}"
    );
    let probe = ctx.output_buffer("probe", 4);
    assert_eq!(counts(&device)[0], before[0] + 1);
    drop(probe);

    let all = ctx.read_f32(&out, 64 + 256 + rows * 13).unwrap();
    let w = q.dequantize();
    let e1 = nmse(&matmul_f64(&w, rows, k, &x_small, 1), &all[64..64 + rows]);
    let e12 = nmse(
        &matmul_f64(&w, rows, k, &x_batch, 12),
        &all[320..320 + 12 * rows],
    );
    assert!(e1 <= 1e-6 && e12 <= 1e-6, "NMSE {e1:e} {e12:e}");
}

#[test]
fn kernels_degrade_without_optional_features() {
    let (device, queue) = callers_device();
    assert!(!device.features().contains(wgpu::Features::SUBGROUP));
    let ctx = GpuContext::from_device(device.clone(), queue);
    for format in [Format::Q8_0, Format::Q4_1] {
        let kernels = Kernels::new(&device, format).unwrap();
        for (i, (rows, k, n)) in [(67, 64, 1), (67, 96, 8), (130, 64, 70)]
            .into_iter()
            .enumerate()
        {
            let k = k.max(format.k_multiple());
            let r = wgquant::verify::matmul_case(&ctx, &kernels, rows, k, n, i as u64).unwrap();
            assert!(r.passed(), "{r:?}");
        }
    }
}

#[test]
fn recommended_features_are_a_subset_of_the_adapters() {
    let adapter = wgquant::gpu::choose_adapter(&wgquant::gpu::DeviceOptions::from_env()).unwrap();
    let f = wgquant::gpu::recommended_features(&adapter);
    assert!(adapter.features().contains(f));
}
