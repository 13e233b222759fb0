//! CPU quantization throughput per format, in bytes of f32 input per second.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use wgquant::{Format, QuantizedTensor};

fn quantize(c: &mut Criterion) {
    let (rows, k) = (256, 4096);
    let weights = wgquant::rng::Rng::new(1).normal_vec(rows * k);
    let mut group = c.benchmark_group("quantize");
    group.throughput(Throughput::Bytes((rows * k * 4) as u64));
    for format in Format::all().into_iter().filter(|f| f.is_quantized()) {
        group.bench_function(format.to_string(), |b| {
            b.iter(|| QuantizedTensor::quantize(format, black_box(&weights), rows, k).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, quantize);
criterion_main!(benches);
