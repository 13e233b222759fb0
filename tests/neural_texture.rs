//! The neural-texture example's frame (wgquant GEMMs + bias/ReLU kernel + fullscreen draw in
//! one encoder, on an engine-style device) against a CPU decode of the same quantized MLP.

#[allow(dead_code)]
#[path = "../examples/neural_texture/texture.rs"]
mod texture;

use texture::{Encoding, Mlp, NeuralTexture, Offscreen, QuantMlp, TrainConfig};
use wgquant::Format;

#[test]
fn gpu_frame_matches_cpu_decode_of_the_quantized_mlp() {
    let enc = Encoding::new(11);
    let cfg = TrainConfig {
        steps: 200,
        ..Default::default()
    };
    let (mlp, _) = Mlp::train(&enc, &cfg);
    let (device, queue) = texture::engine_device().unwrap_or_else(|e| panic!("{e}"));
    // q8_0 at the trained widths; int4_g128 pads 32/64 up to 128 (zero rows and columns).
    for (format, size) in [("q8_0", 128usize), ("int4_g128", 64)] {
        let format: Format = format.parse().unwrap();
        let q = QuantMlp::quantize(&mlp, format).unwrap();
        let target = Offscreen::new(&device, size as u32, size as u32);
        let nt = NeuralTexture::new(
            &device,
            &queue,
            &q,
            &enc,
            (size, size),
            (size as u32, size as u32),
        )
        .unwrap();
        // Two frames through the same prepared dispatches: the second must redo the first.
        for _ in 0..2 {
            let mut encoder = device.create_command_encoder(&Default::default());
            nt.encode_frame(&mut encoder, &target.view);
            queue.submit([encoder.finish()]);
        }
        let gpu = target.read(&device, &queue).unwrap();
        let cpu = q.render_cpu(&enc, size, size);
        let p = texture::psnr(&gpu, &cpu);
        let var = texture::variance(&gpu);
        let fit = texture::psnr(&cpu, &texture::render_target(size, size));
        eprintln!(
            "{format} {size}x{size}: GPU vs CPU {p:.1} dB, variance {var:.0}, vs target {fit:.1} dB"
        );
        assert!(p >= 40.0, "{format}: GPU vs CPU decode PSNR {p:.1} dB < 40");
        assert!(
            var > 300.0,
            "{format}: image nearly constant (variance {var:.1})"
        );
        // The decoded texture resembles the procedural image it was fitted to.
        assert!(fit >= 18.0, "{format}: PSNR vs target {fit:.1} dB < 18");
        assert!(gpu.chunks_exact(4).all(|p| p[3] == 255));
    }
}
