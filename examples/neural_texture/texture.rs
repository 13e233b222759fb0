//! A neural texture: a small coordinate-to-colour MLP fitted on the CPU, quantized with
//! wgquant, and decoded on the GPU every frame (wgquant GEMMs + a bias/ReLU kernel + a
//! fullscreen draw, all in the caller's command encoder).
//!
//! Shared by `examples/neural_texture.rs` and `tests/neural_texture.rs`.

use std::f32::consts::TAU;
use wgpu::util::DeviceExt;
use wgquant::gpu::{Dispatch, GpuContext, GpuWeight, Kernels};
use wgquant::rng::Rng;
use wgquant::{Format, QuantizedTensor};

/// Fourier features of (u, v): sin and cos of `FEATURES / 2` random projections.
pub const FEATURES: usize = 32;
/// Width of the two hidden layers.
pub const HIDDEN: usize = 64;
/// Red, green, blue.
pub const OUT: usize = 3;
/// Standard deviation of the projection frequencies (cycles per texture width).
const SIGMA: f64 = 3.0;
/// The texture format the draw writes (and the PNG holds).
pub const TARGET_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Rgba8Unorm;

/// The fixed positional encoding: `[sin(2 pi b_i . uv), cos(2 pi b_i . uv)]` for each `b_i`.
#[derive(Clone, Debug)]
pub struct Encoding {
    b: Vec<[f32; 2]>,
}

impl Encoding {
    pub fn new(seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let b = (0..FEATURES / 2)
            .map(|_| [(rng.normal() * SIGMA) as f32, (rng.normal() * SIGMA) as f32])
            .collect();
        Encoding { b }
    }

    /// Encode (u, v) into `out[..FEATURES]`.
    pub fn encode(&self, u: f32, v: f32, out: &mut [f32]) {
        for (i, b) in self.b.iter().enumerate() {
            let t = TAU * (b[0] * u + b[1] * v);
            out[2 * i] = t.sin();
            out[2 * i + 1] = t.cos();
        }
    }

    /// The encoding of every texel centre of a `width` x `height` texture (row-major, y
    /// down), each row padded with zeros to `stride` features.
    pub fn texels(&self, width: usize, height: usize, stride: usize) -> Vec<f32> {
        let mut out = vec![0f32; width * height * stride];
        for (p, row) in out.chunks_exact_mut(stride).enumerate() {
            let (u, v) = texel_uv(p % width, p / width, width, height);
            self.encode(u, v, row);
        }
        out
    }
}

/// The centre of texel (x, y) in [0, 1]^2.
pub fn texel_uv(x: usize, y: usize, width: usize, height: usize) -> (f32, f32) {
    (
        (x as f32 + 0.5) / width as f32,
        (y as f32 + 0.5) / height as f32,
    )
}

/// The procedural image the MLP learns: concentric rings over colour gradients.
pub fn target(u: f32, v: f32) -> [f32; 3] {
    let (x, y) = (u - 0.5, v - 0.55);
    let r = (x * x + y * y).sqrt();
    let rings = 0.5 + 0.5 * (TAU * 4.0 * r).cos();
    let fan = 0.5 + 0.5 * (3.0 * y.atan2(x)).sin();
    [
        (0.1 + 0.8 * rings * u + 0.1 * (1.0 - v)).clamp(0.0, 1.0),
        (0.15 + 0.55 * v + 0.25 * (1.0 - rings) * (1.0 - u)).clamp(0.0, 1.0),
        (0.2 + 0.5 * (1.0 - u) * fan + 0.2 * rings * v).clamp(0.0, 1.0),
    ]
}

/// `y = W x + b`, `W` row-major `rows` x `k`.
#[derive(Clone, Debug)]
pub struct Layer {
    pub w: Vec<f32>,
    pub b: Vec<f32>,
    pub rows: usize,
    pub k: usize,
}

impl Layer {
    fn new(rows: usize, k: usize, rng: &mut Rng) -> Self {
        let scale = (2.0 / k as f64).sqrt();
        Layer {
            w: (0..rows * k)
                .map(|_| (rng.normal() * scale) as f32)
                .collect(),
            b: vec![0.0; rows],
            rows,
            k,
        }
    }

    fn forward(&self, x: &[f32], y: &mut [f32]) {
        for (r, y) in y.iter_mut().enumerate() {
            *y = self.b[r] + dot(&self.w[r * self.k..][..self.k], x);
        }
    }

    /// The same layer with zero rows and columns added up to `rows` x `k` (exact: padded
    /// inputs are zero, padded outputs are ReLU(0) = 0).
    fn padded(&self, rows: usize, k: usize) -> Layer {
        let mut w = vec![0f32; rows * k];
        for r in 0..self.rows {
            w[r * k..][..self.k].copy_from_slice(&self.w[r * self.k..][..self.k]);
        }
        let mut b = vec![0f32; rows];
        b[..self.rows].copy_from_slice(&self.b);
        Layer { w, b, rows, k }
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(a, b)| a * b).sum()
}

/// Training settings.
#[derive(Clone, Debug)]
pub struct TrainConfig {
    pub steps: usize,
    pub batch: usize,
    pub lr: f32,
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            steps: 400,
            batch: 512,
            lr: 1e-2,
            seed: 7,
        }
    }
}

/// FEATURES -> HIDDEN -> HIDDEN -> OUT, ReLU after both hidden layers, linear output.
#[derive(Clone, Debug)]
pub struct Mlp {
    pub layers: [Layer; 3],
}

struct Adam {
    m: Vec<f32>,
    v: Vec<f32>,
}

impl Adam {
    fn new(len: usize) -> Self {
        Adam {
            m: vec![0.0; len],
            v: vec![0.0; len],
        }
    }

    fn step(&mut self, p: &mut [f32], g: &[f32], lr: f32, t: i32) {
        let (b1, b2) = (0.9f32, 0.999f32);
        let (c1, c2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
        for i in 0..p.len() {
            self.m[i] = b1 * self.m[i] + (1.0 - b1) * g[i];
            self.v[i] = b2 * self.v[i] + (1.0 - b2) * g[i] * g[i];
            p[i] -= lr * (self.m[i] / c1) / ((self.v[i] / c2).sqrt() + 1e-8);
        }
    }
}

impl Mlp {
    /// Fit the MLP to [`target`] with Adam on uniformly sampled points (MSE loss).
    /// Deterministic for a given config. Returns the model and the last batch's loss.
    pub fn train(enc: &Encoding, cfg: &TrainConfig) -> (Mlp, f32) {
        let mut rng = Rng::new(cfg.seed);
        let mut mlp = Mlp {
            layers: [
                Layer::new(HIDDEN, FEATURES, &mut rng),
                Layer::new(HIDDEN, HIDDEN, &mut rng),
                Layer::new(OUT, HIDDEN, &mut rng),
            ],
        };
        let mut opt: Vec<(Adam, Adam)> = mlp
            .layers
            .iter()
            .map(|l| (Adam::new(l.w.len()), Adam::new(l.b.len())))
            .collect();
        let mut grads: Vec<(Vec<f32>, Vec<f32>)> = mlp
            .layers
            .iter()
            .map(|l| (vec![0.0; l.w.len()], vec![0.0; l.b.len()]))
            .collect();
        let (mut x, mut z1, mut z2, mut y) = (
            [0f32; FEATURES],
            [0f32; HIDDEN],
            [0f32; HIDDEN],
            [0f32; OUT],
        );
        let (mut a1, mut a2) = ([0f32; HIDDEN], [0f32; HIDDEN]);
        let (mut d1, mut d2) = ([0f32; HIDDEN], [0f32; HIDDEN]);
        let mut loss = 0.0;
        for step in 0..cfg.steps {
            for (gw, gb) in &mut grads {
                gw.fill(0.0);
                gb.fill(0.0);
            }
            loss = 0.0;
            for _ in 0..cfg.batch {
                let (u, v) = (rng.uniform() as f32, rng.uniform() as f32);
                enc.encode(u, v, &mut x);
                let t = target(u, v);
                let [l1, l2, l3] = &mlp.layers;
                l1.forward(&x, &mut z1);
                relu(&z1, &mut a1);
                l2.forward(&a1, &mut z2);
                relu(&z2, &mut a2);
                l3.forward(&a2, &mut y);
                let mut dy = [0f32; OUT];
                for c in 0..OUT {
                    let e = y[c] - t[c];
                    loss += e * e;
                    dy[c] = 2.0 * e / (cfg.batch * OUT) as f32;
                }
                // Back through layer 3.
                d2.fill(0.0);
                for (c, &g) in dy.iter().enumerate() {
                    let (gw, gb) = &mut grads[2];
                    gb[c] += g;
                    for j in 0..HIDDEN {
                        gw[c * HIDDEN + j] += g * a2[j];
                        d2[j] += g * l3.w[c * HIDDEN + j];
                    }
                }
                for j in 0..HIDDEN {
                    if z2[j] <= 0.0 {
                        d2[j] = 0.0;
                    }
                }
                // Layer 2.
                d1.fill(0.0);
                for (r, &g) in d2.iter().enumerate() {
                    if g == 0.0 {
                        continue;
                    }
                    let (gw, gb) = &mut grads[1];
                    gb[r] += g;
                    let (gw, w) = (
                        &mut gw[r * HIDDEN..][..HIDDEN],
                        &l2.w[r * HIDDEN..][..HIDDEN],
                    );
                    for j in 0..HIDDEN {
                        gw[j] += g * a1[j];
                        d1[j] += g * w[j];
                    }
                }
                for j in 0..HIDDEN {
                    if z1[j] <= 0.0 {
                        d1[j] = 0.0;
                    }
                }
                // Layer 1.
                for (r, &g) in d1.iter().enumerate() {
                    if g == 0.0 {
                        continue;
                    }
                    let (gw, gb) = &mut grads[0];
                    gb[r] += g;
                    for (gw, x) in gw[r * FEATURES..][..FEATURES].iter_mut().zip(&x) {
                        *gw += g * x;
                    }
                }
            }
            loss /= (cfg.batch * OUT) as f32;
            // Cosine decay to a tenth of the initial rate.
            let frac = step as f32 / cfg.steps.max(1) as f32;
            let lr = cfg.lr * (0.1 + 0.45 * (1.0 + (std::f32::consts::PI * frac).cos()));
            for ((layer, (ow, ob)), (gw, gb)) in mlp.layers.iter_mut().zip(&mut opt).zip(&grads) {
                ow.step(&mut layer.w, gw, lr, step as i32 + 1);
                ob.step(&mut layer.b, gb, lr, step as i32 + 1);
            }
        }
        (mlp, loss)
    }

    /// The colour of one encoded point, in f32.
    pub fn forward(&self, x: &[f32]) -> [f32; 3] {
        let (mut h1, mut h2, mut y) = ([0f32; HIDDEN], [0f32; HIDDEN], [0f32; OUT]);
        self.layers[0].forward(x, &mut h1);
        h1.iter_mut().for_each(|v| *v = v.max(0.0));
        self.layers[1].forward(&h1, &mut h2);
        h2.iter_mut().for_each(|v| *v = v.max(0.0));
        self.layers[2].forward(&h2, &mut y);
        y
    }

    /// Decode the whole texture on the CPU with these f32 weights.
    pub fn render(&self, enc: &Encoding, width: usize, height: usize) -> Vec<u8> {
        let x = enc.texels(width, height, FEATURES);
        let rgb: Vec<f32> = x
            .chunks_exact(FEATURES)
            .flat_map(|x| self.forward(x))
            .collect();
        to_rgba8(&rgb)
    }
}

fn relu(z: &[f32], a: &mut [f32]) {
    for (a, z) in a.iter_mut().zip(z) {
        *a = z.max(0.0);
    }
}

/// A layer's weights quantized for the GPU (zero-padded so K fits the format's blocks).
#[derive(Clone, Debug)]
pub struct QuantLayer {
    pub weight: QuantizedTensor,
    pub bias: Vec<f32>,
    pub relu: bool,
}

/// The MLP with its matrices quantized to one format.
#[derive(Clone, Debug)]
pub struct QuantMlp {
    pub format: Format,
    pub layers: Vec<QuantLayer>,
    /// Input features per texel after padding (the encoding's row stride).
    pub features: usize,
}

impl QuantMlp {
    /// Pad the input and hidden widths up to multiples of the format's block
    /// (`Format::k_multiple`) and quantize the three weight matrices.
    pub fn quantize(mlp: &Mlp, format: Format) -> wgquant::Result<QuantMlp> {
        let m = format.k_multiple();
        let (f, h) = (FEATURES.next_multiple_of(m), HIDDEN.next_multiple_of(m));
        let shapes = [(h, f, true), (h, h, true), (OUT, h, false)];
        let mut layers = Vec::new();
        for (l, (rows, k, relu)) in mlp.layers.iter().zip(shapes) {
            let p = l.padded(rows, k);
            layers.push(QuantLayer {
                weight: QuantizedTensor::quantize(format, &p.w, rows, k)?,
                bias: p.b,
                relu,
            });
        }
        Ok(QuantMlp {
            format,
            layers,
            features: f,
        })
    }

    /// Bytes of quantized weights.
    pub fn weight_bytes(&self) -> usize {
        self.layers.iter().map(|l| l.weight.bytes().len()).sum()
    }

    /// The CPU reference: dequantized weights, f64 arithmetic, the same rounding to 8 bits
    /// as the GPU's render target.
    pub fn render_cpu(&self, enc: &Encoding, width: usize, height: usize) -> Vec<u8> {
        let ws: Vec<Vec<f32>> = self.layers.iter().map(|l| l.weight.dequantize()).collect();
        let x = enc.texels(width, height, self.features);
        let mut rgb = Vec::with_capacity(width * height * OUT);
        let mut act: Vec<f64> = Vec::new();
        let mut next: Vec<f64> = Vec::new();
        for x in x.chunks_exact(self.features) {
            act.clear();
            act.extend(x.iter().map(|&v| v as f64));
            for (l, w) in self.layers.iter().zip(&ws) {
                let (rows, k) = (l.weight.rows(), l.weight.k());
                next.clear();
                for r in 0..rows {
                    let s: f64 = w[r * k..][..k]
                        .iter()
                        .zip(&act)
                        .map(|(&w, &a)| w as f64 * a)
                        .sum();
                    let v = s + l.bias[r] as f64;
                    next.push(if l.relu { v.max(0.0) } else { v });
                }
                std::mem::swap(&mut act, &mut next);
            }
            rgb.extend(act.iter().map(|&v| v as f32));
        }
        to_rgba8(&rgb)
    }
}

/// RGB f32 (3 per texel) to RGBA8 the way a `Rgba8Unorm` target stores it.
pub fn to_rgba8(rgb: &[f32]) -> Vec<u8> {
    rgb.chunks_exact(3)
        .flat_map(|c| {
            let q = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
            [q(c[0]), q(c[1]), q(c[2]), 255]
        })
        .collect()
}

/// The target image as RGBA8.
pub fn render_target(width: usize, height: usize) -> Vec<u8> {
    let rgb: Vec<f32> = (0..width * height)
        .flat_map(|p| {
            let (u, v) = texel_uv(p % width, p / width, width, height);
            target(u, v)
        })
        .collect();
    to_rgba8(&rgb)
}

/// PSNR in dB between two RGBA8 images over the RGB channels (infinite when identical).
pub fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let (mut se, mut n) = (0f64, 0usize);
    for (pa, pb) in a.chunks_exact(4).zip(b.chunks_exact(4)) {
        for c in 0..3 {
            let d = pa[c] as f64 - pb[c] as f64;
            se += d * d;
            n += 1;
        }
    }
    let mse = se / n as f64;
    10.0 * (255.0f64 * 255.0 / mse).log10()
}

/// Variance of the RGB channel values of an RGBA8 image (0 for a constant image).
pub fn variance(img: &[u8]) -> f64 {
    let vals: Vec<f64> = img
        .chunks_exact(4)
        .flat_map(|p| p[..3].iter().map(|&v| v as f64))
        .collect();
    let mean = vals.iter().sum::<f64>() / vals.len() as f64;
    vals.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / vals.len() as f64
}

/// One bias + activation dispatch, prepared once.
struct BiasStep {
    bind_group: wgpu::BindGroup,
    groups: [u32; 2],
}

/// Everything the GPU decode needs, built once; [`NeuralTexture::encode_frame`] only
/// records commands.
pub struct NeuralTexture {
    matmuls: Vec<Dispatch>,
    biases: Vec<BiasStep>,
    bias_pipeline: wgpu::ComputePipeline,
    draw_pipeline: wgpu::RenderPipeline,
    draw_bind_group: wgpu::BindGroup,
    // Kept alive for the prepared bind groups.
    _weights: Vec<GpuWeight>,
    _buffers: Vec<wgpu::Buffer>,
}

impl NeuralTexture {
    /// Upload the quantized MLP and the texel encoding to the caller's device and prepare
    /// every dispatch of a frame. The draw targets `target_size` texels of
    /// [`TARGET_FORMAT`] (the texture is scaled to fit).
    pub fn new(
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        mlp: &QuantMlp,
        enc: &Encoding,
        (width, height): (usize, usize),
        target_size: (u32, u32),
    ) -> wgquant::Result<Self> {
        let ctx = GpuContext::from_device(device.clone(), queue.clone());
        let n = width * height;
        let kernels = Kernels::new(device, mlp.format)?;
        let input = ctx.storage_buffer("nt encoding", &enc.texels(width, height, mlp.features));
        let bias_module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("nt bias_act"),
            source: wgpu::ShaderSource::Wgsl(include_str!("bias_act.wgsl").into()),
        });
        let bias_pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("nt bias_act"),
            layout: None,
            module: &bias_module,
            entry_point: Some("bias_act"),
            compilation_options: Default::default(),
            cache: None,
        });
        let bias_layout = bias_pipeline.get_bind_group_layout(0);
        let max_x = device.limits().max_compute_workgroups_per_dimension as usize;

        let (mut weights, mut matmuls, mut biases, mut buffers) = (vec![], vec![], vec![], vec![]);
        let mut x = input;
        for (i, l) in mlp.layers.iter().enumerate() {
            let rows = l.weight.rows();
            let weight = GpuWeight::upload(&ctx, &l.weight)?;
            let y = ctx.output_buffer(&format!("nt layer {i}"), n * rows);
            matmuls.push(kernels.matmul(&weight, &x, &y, n)?);
            let bias = ctx.storage_buffer(&format!("nt bias {i}"), &l.bias);
            let count = n * rows;
            let wgs = count.div_ceil(256);
            let gx = wgs.min(max_x);
            let params = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("nt bias params"),
                contents: bytemuck::cast_slice(&[
                    count as u32,
                    rows as u32,
                    l.relu as u32,
                    gx as u32,
                ]),
                usage: wgpu::BufferUsages::UNIFORM,
            });
            let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("nt bias_act"),
                layout: &bias_layout,
                entries: &[
                    entry(0, y.as_entire_binding()),
                    entry(1, bias.as_entire_binding()),
                    entry(2, params.as_entire_binding()),
                ],
            });
            biases.push(BiasStep {
                bind_group,
                groups: [gx as u32, wgs.div_ceil(gx) as u32],
            });
            weights.push(weight);
            buffers.extend([std::mem::replace(&mut x, y), bias, params]);
        }
        let rgb = x;

        let draw_module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("nt draw"),
            source: wgpu::ShaderSource::Wgsl(include_str!("draw.wgsl").into()),
        });
        let draw_pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("nt draw"),
            layout: None,
            vertex: wgpu::VertexState {
                module: &draw_module,
                entry_point: Some("vs"),
                compilation_options: Default::default(),
                buffers: &[],
            },
            primitive: Default::default(),
            depth_stencil: None,
            multisample: Default::default(),
            fragment: Some(wgpu::FragmentState {
                module: &draw_module,
                entry_point: Some("fs"),
                compilation_options: Default::default(),
                targets: &[Some(TARGET_FORMAT.into())],
            }),
            multiview_mask: None,
            cache: None,
        });
        let view = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("nt view"),
            contents: bytemuck::cast_slice(&[
                width as u32,
                height as u32,
                target_size.0,
                target_size.1,
            ]),
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let draw_bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("nt draw"),
            layout: &draw_pipeline.get_bind_group_layout(0),
            entries: &[
                entry(0, rgb.as_entire_binding()),
                entry(1, view.as_entire_binding()),
            ],
        });
        buffers.extend([rgb, view]);
        Ok(NeuralTexture {
            matmuls,
            biases,
            bias_pipeline,
            draw_pipeline,
            draw_bind_group,
            _weights: weights,
            _buffers: buffers,
        })
    }

    /// Record one frame into the caller's encoder: a compute pass with the three layers
    /// (wgquant GEMM, then bias + activation), then a render pass that draws the colours
    /// into `target` (a view of a [`TARGET_FORMAT`] texture of the size given to `new`).
    pub fn encode_frame(&self, encoder: &mut wgpu::CommandEncoder, target: &wgpu::TextureView) {
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("neural texture decode"),
                timestamp_writes: None,
            });
            for (mm, b) in self.matmuls.iter().zip(&self.biases) {
                mm.encode_in_pass(&mut pass);
                pass.set_pipeline(&self.bias_pipeline);
                pass.set_bind_group(0, &b.bind_group, &[]);
                pass.dispatch_workgroups(b.groups[0], b.groups[1], 1);
            }
        }
        let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
            label: Some("neural texture draw"),
            color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                view: target,
                depth_slice: None,
                resolve_target: None,
                ops: wgpu::Operations {
                    load: wgpu::LoadOp::Clear(wgpu::Color::BLACK),
                    store: wgpu::StoreOp::Store,
                },
            })],
            depth_stencil_attachment: None,
            timestamp_writes: None,
            occlusion_query_set: None,
            multiview_mask: None,
        });
        pass.set_pipeline(&self.draw_pipeline);
        pass.set_bind_group(0, &self.draw_bind_group, &[]);
        pass.draw(0..3, 0..1);
    }
}

fn entry(binding: u32, resource: wgpu::BindingResource<'_>) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry { binding, resource }
}

/// An offscreen render target of [`TARGET_FORMAT`] that can be read back.
pub struct Offscreen {
    pub texture: wgpu::Texture,
    pub view: wgpu::TextureView,
    readback: wgpu::Buffer,
    padded_row: u32,
}

impl Offscreen {
    pub fn new(device: &wgpu::Device, width: u32, height: u32) -> Self {
        let texture = device.create_texture(&wgpu::TextureDescriptor {
            label: Some("nt offscreen"),
            size: wgpu::Extent3d {
                width,
                height,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: TARGET_FORMAT,
            usage: wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC,
            view_formats: &[],
        });
        let view = texture.create_view(&Default::default());
        let padded_row = (width * 4).next_multiple_of(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT);
        let readback = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("nt readback"),
            size: padded_row as u64 * height as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Offscreen {
            texture,
            view,
            readback,
            padded_row,
        }
    }

    /// Copy the texture back and return its RGBA8 texels, row-major (waits for the GPU).
    pub fn read(&self, device: &wgpu::Device, queue: &wgpu::Queue) -> wgquant::Result<Vec<u8>> {
        let gpu = |e: &dyn std::fmt::Display| wgquant::Error::Gpu(e.to_string());
        let (w, h) = (self.texture.width(), self.texture.height());
        let mut enc = device.create_command_encoder(&Default::default());
        enc.copy_texture_to_buffer(
            self.texture.as_image_copy(),
            wgpu::TexelCopyBufferInfo {
                buffer: &self.readback,
                layout: wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(self.padded_row),
                    rows_per_image: Some(h),
                },
            },
            self.texture.size(),
        );
        queue.submit([enc.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        self.readback
            .slice(..)
            .map_async(wgpu::MapMode::Read, move |r| drop(tx.send(r)));
        device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| gpu(&e))?;
        rx.recv().map_err(|e| gpu(&e))?.map_err(|e| gpu(&e))?;
        let mapped = self
            .readback
            .slice(..)
            .get_mapped_range()
            .map_err(|e| gpu(&e))?;
        let mut out = Vec::with_capacity((w * h * 4) as usize);
        for row in mapped.chunks_exact(self.padded_row as usize) {
            out.extend_from_slice(&row[..(w * 4) as usize]);
        }
        drop(mapped);
        self.readback.unmap();
        Ok(out)
    }
}

/// A device made the way an engine makes its own: default limits, and only the optional
/// features wgquant recommends that the adapter has (subgroups matter: without them the
/// batched matmul on lavapipe runs about 13x slower).
pub fn engine_device() -> wgquant::Result<(wgpu::Device, wgpu::Queue)> {
    let adapter = wgquant::gpu::choose_adapter(&wgquant::gpu::DeviceOptions::from_env())?;
    pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("engine"),
        required_features: wgquant::gpu::recommended_features(&adapter),
        required_limits: wgpu::Limits::default(),
        ..Default::default()
    }))
    .map_err(|e| wgquant::Error::Gpu(e.to_string()))
}
