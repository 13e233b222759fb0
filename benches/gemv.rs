//! GPU GEMV (n = 1) per format, timed by GPU timestamp queries through `iter_custom`
//! (wall clock where the adapter has none). Weights rotate through copies that together
//! exceed the last-level cache on a hardware GPU.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::time::Duration;
use wgquant::bench::{copies_for, Timer};
use wgquant::gpu::{GpuContext, GpuWeight, Kernels};
use wgquant::{Format, QuantizedTensor};

fn gemv(c: &mut Criterion) {
    let ctx = GpuContext::from_env().unwrap_or_else(|e| panic!("{e}"));
    let (m, k) = if ctx.is_cpu() {
        (1024, 1024)
    } else {
        (4096, 14336)
    };
    let in_flight = if ctx.is_cpu() { 0 } else { 512 << 20 };
    let weights = wgquant::rng::Rng::new(1).normal_vec(m * k);
    let x = ctx.storage_buffer("x", &wgquant::rng::Rng::new(2).normal_vec(k));
    let y = ctx.output_buffer("y", m);
    let timer = Timer::new(&ctx, 64);
    let mut group = c.benchmark_group(format!("gemv {m}x{k} n=1 on {}", ctx.info.name));
    group.sample_size(10);
    for format in Format::defaults() {
        let q = QuantizedTensor::quantize(format, &weights, m, k).unwrap();
        let kernels = Kernels::new(&ctx.device, format).unwrap();
        let first = GpuWeight::upload(&ctx, &q).unwrap();
        group.throughput(Throughput::Bytes(first.gpu_bytes()));
        let mut copies = vec![first];
        for _ in 1..copies_for(copies[0].gpu_bytes(), in_flight) {
            copies.push(GpuWeight::upload(&ctx, &q).unwrap());
        }
        let ops: Vec<_> = copies
            .iter()
            .map(|w| kernels.matmul(w, &x, &y, 1).unwrap())
            .collect();
        group.bench_function(format.to_string(), |b| {
            b.iter_custom(|iters| {
                let t = timer.seconds(&ops, 1, iters as usize).unwrap();
                Duration::from_secs_f64(t.iter().sum())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, gemv);
criterion_main!(benches);
