//! Neural texture: wgquant inside a renderer.
//!
//! Fits a small MLP (Fourier features of (u, v) -> 64 -> 64 -> RGB) to a procedural image on
//! the CPU, quantizes its weight matrices with wgquant, then decodes the texture on the GPU
//! every frame: one command encoder per frame holding three prepared wgquant GEMMs (one per
//! layer, n = one activation row per texel), a small bias + ReLU kernel between them, and a
//! fullscreen render pass whose fragment shader reads the decoded colours.
//!
//! Offscreen only (no window): renders into a texture, reads it back, writes a PNG.
//!
//! ```sh
//! cargo run --release --example neural_texture -- --headless out.png [--format q8_0]
//!     [--size 256] [--steps 400] [--frames 5] [--seed 7]
//! ```

#[path = "neural_texture/texture.rs"]
mod texture;

use std::time::Instant;
use texture::{Encoding, Mlp, NeuralTexture, Offscreen, QuantMlp, TrainConfig};
use wgquant::Format;

struct Args {
    out: std::path::PathBuf,
    format: Format,
    size: usize,
    frames: usize,
    train: TrainConfig,
}

const USAGE: &str = "usage: neural_texture --headless OUT.png [--format F] [--size N] \
                     [--steps N] [--frames N] [--seed N]\n\
                     (this example renders offscreen only; there is no window mode)";

fn parse() -> Result<Args, String> {
    let mut out = None;
    let mut format = Format::Q8_0;
    let (mut size, mut frames) = (256, 5);
    let mut train = TrainConfig::default();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let num = |v: String| v.parse::<usize>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--headless" => out = Some(value()?.into()),
            "--format" => format = value()?.parse().map_err(|e| format!("{e}"))?,
            "--size" => size = num(value()?)?,
            "--steps" => train.steps = num(value()?)?,
            "--frames" => frames = num(value()?)?.max(1),
            "--seed" => train.seed = num(value()?)? as u64,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    if !format.is_quantized() {
        return Err("choose a quantized format (f32 is the baseline, not a weight format)".into());
    }
    let out = out.ok_or_else(|| USAGE.to_string())?;
    Ok(Args {
        out,
        format,
        size,
        frames,
        train,
    })
}

fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let (w, h) = (args.size, args.size);
    let enc = Encoding::new(args.train.seed ^ 0x5eed);
    let t = Instant::now();
    let (mlp, loss) = Mlp::train(&enc, &args.train);
    println!(
        "trained {} steps x {} points on the CPU in {:.2} s (last batch MSE {loss:.5})",
        args.train.steps,
        args.train.batch,
        t.elapsed().as_secs_f64()
    );
    let q = QuantMlp::quantize(&mlp, args.format)?;
    println!(
        "quantized to {} (input {} features, hidden {} after padding to {}): {} bytes of weights",
        args.format,
        q.features,
        q.layers[0].weight.rows(),
        args.format.k_multiple(),
        q.weight_bytes()
    );

    // The engine's device: its own adapter choice, default limits, no optional features.
    let (device, queue) = texture::engine_device()?;
    println!("adapter: {}", device.adapter_info().name);
    let t = Instant::now();
    let target = Offscreen::new(&device, w as u32, h as u32);
    let nt = NeuralTexture::new(&device, &queue, &q, &enc, (w, h), (w as u32, h as u32))?;
    println!("prepared in {:.2} s", t.elapsed().as_secs_f64());

    // The frame loop: encode into one encoder, submit, (here) wait to time it.
    let mut times = Vec::new();
    for _ in 0..args.frames {
        let t = Instant::now();
        let mut encoder = device.create_command_encoder(&Default::default());
        nt.encode_frame(&mut encoder, &target.view);
        queue.submit([encoder.finish()]);
        device.poll(wgpu::PollType::wait_indefinitely())?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{} frames of {w}x{h} ({} texels per GEMM): median {:.2} ms, fastest {:.2} ms",
        args.frames,
        w * h,
        times[times.len() / 2] * 1e3,
        times[0] * 1e3
    );

    let gpu = target.read(&device, &queue)?;
    let cpu = q.render_cpu(&enc, w, h);
    let f32_img = mlp.render(&enc, w, h);
    let reference = texture::render_target(w, h);
    println!(
        "PSNR: GPU vs CPU decode of the same {} MLP {:.1} dB; {} vs f32 MLP {:.1} dB; \
         f32 MLP vs target image {:.1} dB",
        args.format,
        texture::psnr(&gpu, &cpu),
        args.format,
        texture::psnr(&cpu, &f32_img),
        texture::psnr(&f32_img, &reference)
    );

    println!(
        "image variance {:.0} (0 would be a constant image)",
        texture::variance(&gpu)
    );

    let file = std::io::BufWriter::new(std::fs::File::create(&args.out)?);
    let mut png = png::Encoder::new(file, w as u32, h as u32);
    png.set_color(png::ColorType::Rgba);
    png.set_depth(png::BitDepth::Eight);
    png.write_header()?.write_image_data(&gpu)?;
    println!("wrote {}", args.out.display());
    Ok(())
}
