//! Quantization-aware training of a small MLP with wgquant's GPU fake quantizer.
//!
//! Task: 8-class classification of 32-d Gaussian inputs labelled by a fixed random "teacher"
//! network (32 -> 32 tanh -> 8, argmax), so decision boundaries are curved and many points
//! lie near them. Student: 32 -> 64 ReLU -> 64 ReLU -> 8, cross-entropy, Adam with a linear
//! learning-rate decay, all deterministic (`wgquant::rng::Rng`).
//!
//! Two students from the same initialisation and the same batches:
//! - float: trained in f32, then quantized post-training (RTN, `QuantizedTensor::quantize`);
//! - QAT: every step the three weight matrices go through the GPU fake quantizer
//!   (`FakeQuant::forward`, scales derived as int4_g32 does), the CPU runs the network on the
//!   fake-quantized weights, and the weight gradients go back through `FakeQuant::backward`
//!   (straight-through estimator) before the Adam step on the float weights.
//!
//! Then both are quantized for real and evaluated on held-out data. Biases stay f32.
//!
//! `cargo run --release --example qat [FORMAT [SEED]]` (default int4_g32, seed 1; any
//! int format with groups of 32).

use std::time::Instant;
use wgquant::gpu::{FakeQuant, GpuContext, Operand, ParamsMode};
use wgquant::quantize::FakeQuantConfig;
use wgquant::rng::Rng;
use wgquant::{Format, QuantizedTensor, Result};

pub const INPUTS: usize = 32;
pub const HIDDEN: usize = 64;
pub const CLASSES: usize = 8;
const TEACHER_HIDDEN: usize = 32;
/// Layer shapes (in, out); weights are `out` rows of `in` (groups run along `in`).
const SHAPES: [(usize, usize); 3] = [(INPUTS, HIDDEN), (HIDDEN, HIDDEN), (HIDDEN, CLASSES)];

#[derive(Clone, Debug)]
pub struct Settings {
    pub format: Format,
    pub steps: usize,
    pub batch: usize,
    pub train: usize,
    pub test: usize,
    pub lr: f32,
    pub seed: u64,
}

impl Settings {
    pub fn full(format: Format) -> Self {
        Settings {
            format,
            steps: 3000,
            batch: 64,
            train: 8192,
            test: 4096,
            lr: 3e-3,
            seed: 1,
        }
    }

    /// A few seconds' worth, for the test that keeps this example from rotting.
    pub fn short() -> Self {
        Settings {
            steps: 150,
            train: 1024,
            test: 512,
            ..Settings::full("int4_g32".parse().unwrap())
        }
    }
}

/// Test accuracies (fractions) and mean cross-entropies, and training times.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub float_acc: f64,
    pub float_loss: f64,
    pub float_rtn_acc: f64,
    pub float_rtn_loss: f64,
    /// The QAT network with the GPU fake-quantized weights it trained with.
    pub qat_fake_acc: f64,
    /// The QAT network after real quantization (`QuantizedTensor::quantize(..).dequantize()`).
    pub qat_real_acc: f64,
    pub qat_real_loss: f64,
    pub float_secs: f64,
    pub qat_secs: f64,
}

#[derive(Clone)]
struct Net {
    w: [Vec<f32>; 3],
    b: [Vec<f32>; 3],
}

impl Net {
    fn init(rng: &mut Rng) -> Net {
        let w = SHAPES.map(|(i, o)| {
            let sd = (2.0 / i as f64).sqrt() as f32;
            rng.normal_vec(i * o).into_iter().map(|v| v * sd).collect()
        });
        Net {
            w,
            b: SHAPES.map(|(_, o)| vec![0.0; o]),
        }
    }
}

/// `y = x w^T + b` for `n` rows.
fn linear(x: &[f32], w: &[f32], b: &[f32], n: usize, (inp, out): (usize, usize)) -> Vec<f32> {
    let mut y = vec![0.0; n * out];
    for (xr, yr) in x.chunks_exact(inp).zip(y.chunks_exact_mut(out)) {
        for ((yo, wr), bo) in yr.iter_mut().zip(w.chunks_exact(inp)).zip(b) {
            *yo = bo + xr.iter().zip(wr).map(|(a, c)| a * c).sum::<f32>();
        }
    }
    y
}

/// Activations of each layer input plus the logits.
fn forward(w: &[Vec<f32>; 3], b: &[Vec<f32>; 3], x: &[f32], n: usize) -> Vec<Vec<f32>> {
    let mut acts = vec![x.to_vec()];
    for l in 0..3 {
        let mut y = linear(&acts[l], &w[l], &b[l], n, SHAPES[l]);
        if l < 2 {
            y.iter_mut().for_each(|v| *v = v.max(0.0));
        }
        acts.push(y);
    }
    acts
}

/// Softmax cross-entropy: (mean loss, dL/dlogits, correct count).
fn softmax_xent(logits: &[f32], labels: &[usize]) -> (f64, Vec<f32>, usize) {
    let n = labels.len();
    let mut grad = vec![0.0; logits.len()];
    let (mut loss, mut correct) = (0.0f64, 0);
    for ((z, g), &y) in logits
        .chunks_exact(CLASSES)
        .zip(grad.chunks_exact_mut(CLASSES))
        .zip(labels)
    {
        let m = z.iter().fold(f32::MIN, |a, &v| a.max(v));
        let e: Vec<f32> = z.iter().map(|v| (v - m).exp()).collect();
        let sum: f32 = e.iter().sum();
        loss -= ((e[y] / sum) as f64).ln();
        let argmax = (0..CLASSES).fold(0, |a, i| if z[i] > z[a] { i } else { a });
        correct += (argmax == y) as usize;
        for i in 0..CLASSES {
            g[i] = (e[i] / sum - (i == y) as u8 as f32) / n as f32;
        }
    }
    (loss / n as f64, grad, correct)
}

/// Gradients of the loss in the weights used (`w`) and biases.
fn backward(
    w: &[Vec<f32>; 3],
    acts: &[Vec<f32>],
    mut dy: Vec<f32>,
    n: usize,
) -> ([Vec<f32>; 3], [Vec<f32>; 3]) {
    let mut gw: [Vec<f32>; 3] = SHAPES.map(|(i, o)| vec![0.0; i * o]);
    let mut gb: [Vec<f32>; 3] = SHAPES.map(|(_, o)| vec![0.0; o]);
    for l in (0..3).rev() {
        let (inp, out) = SHAPES[l];
        let x = &acts[l];
        for (xr, dr) in x.chunks_exact(inp).zip(dy.chunks_exact(out)) {
            for ((gwr, gbo), &d) in gw[l].chunks_exact_mut(inp).zip(&mut gb[l]).zip(dr) {
                *gbo += d;
                gwr.iter_mut().zip(xr).for_each(|(g, &a)| *g += d * a);
            }
        }
        if l > 0 {
            let mut dx = vec![0.0; n * inp];
            for (dxr, dr) in dx.chunks_exact_mut(inp).zip(dy.chunks_exact(out)) {
                for (wr, &d) in w[l].chunks_exact(inp).zip(dr) {
                    dxr.iter_mut().zip(wr).for_each(|(g, &c)| *g += d * c);
                }
            }
            // ReLU: the layer input is the previous layer's rectified output.
            dx.iter_mut().zip(x).for_each(|(g, &a)| {
                if a <= 0.0 {
                    *g = 0.0
                }
            });
            dy = dx;
        }
    }
    (gw, gb)
}

struct Adam {
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    t: i32,
}

impl Adam {
    fn new(net: &Net) -> Adam {
        let sizes: Vec<usize> = net.w.iter().chain(&net.b).map(|p| p.len()).collect();
        Adam {
            m: sizes.iter().map(|&s| vec![0.0; s]).collect(),
            v: sizes.iter().map(|&s| vec![0.0; s]).collect(),
            t: 0,
        }
    }

    fn step(&mut self, net: &mut Net, gw: &[Vec<f32>; 3], gb: &[Vec<f32>; 3], lr: f32) {
        self.t += 1;
        let (b1, b2) = (0.9f32, 0.999f32);
        let (c1, c2) = (1.0 - b1.powi(self.t), 1.0 - b2.powi(self.t));
        let params = net.w.iter_mut().chain(net.b.iter_mut());
        for (((p, g), m), v) in params
            .zip(gw.iter().chain(gb))
            .zip(&mut self.m)
            .zip(&mut self.v)
        {
            for i in 0..p.len() {
                m[i] = b1 * m[i] + (1.0 - b1) * g[i];
                v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
                p[i] -= lr * (m[i] / c1) / ((v[i] / c2).sqrt() + 1e-8);
            }
        }
    }
}

/// Inputs and teacher labels.
fn dataset(teacher: &Net, rng: &mut Rng, n: usize) -> (Vec<f32>, Vec<usize>) {
    let x = rng.normal_vec(n * INPUTS);
    let (i, h) = (INPUTS, TEACHER_HIDDEN);
    let mut hid = linear(&x, &teacher.w[0], &teacher.b[0], n, (i, h));
    hid.iter_mut().for_each(|v| *v = v.tanh());
    let z = linear(&hid, &teacher.w[1], &teacher.b[1], n, (h, CLASSES));
    let labels = z
        .chunks_exact(CLASSES)
        .map(|r| (0..CLASSES).fold(0, |a, c| if r[c] > r[a] { c } else { a }))
        .collect();
    (x, labels)
}

/// The GPU side of QAT: the three weight matrices packed in one buffer (each slice 256-byte
/// aligned), dispatches prepared once and re-encoded every step.
struct GpuFakeQuant<'a> {
    ctx: &'a GpuContext,
    offsets: [usize; 3],
    total: usize,
    w: wgpu::Buffer,
    w_fq: wgpu::Buffer,
    grad_y: wgpu::Buffer,
    grad_x: wgpu::Buffer,
    _params: wgpu::Buffer,
    forward: Vec<wgquant::gpu::FakeQuantDispatch>,
    backward: Vec<wgquant::gpu::FakeQuantDispatch>,
}

impl<'a> GpuFakeQuant<'a> {
    fn new(ctx: &'a GpuContext, cfg: FakeQuantConfig) -> Result<Self> {
        let fq = FakeQuant::new(&ctx.device, cfg)?;
        let align = |v: usize| v.div_ceil(64) * 64; // in f32: 256 bytes
        let mut offsets = [0; 3];
        let (mut total, mut ptotal) = (0, 0);
        let mut poffsets = [0; 3];
        for (l, &(i, o)) in SHAPES.iter().enumerate() {
            offsets[l] = total;
            poffsets[l] = ptotal;
            total = align(total + i * o);
            ptotal = align(ptotal + 2 * i * o / cfg.group);
        }
        let w = ctx.output_buffer("qat w", total);
        let w_fq = ctx.output_buffer("qat w fake-quantized", total);
        let grad_y = ctx.output_buffer("qat dL/dw'", total);
        let grad_x = ctx.output_buffer("qat dL/dw", total);
        let params = ctx.output_buffer("qat params", ptotal);
        let at = |b, off: usize| Operand {
            buffer: b,
            offset: off as u64 * 4,
        };
        let (mut forward, mut backward) = (Vec::new(), Vec::new());
        for (l, &(i, o)) in SHAPES.iter().enumerate() {
            let (off, poff) = (offsets[l], poffsets[l]);
            forward.push(fq.forward(
                at(&w, off),
                at(&params, poff),
                at(&w_fq, off),
                i * o,
                ParamsMode::Derive,
            )?);
            backward.push(fq.backward(
                at(&w, off),
                at(&params, poff),
                at(&grad_y, off),
                at(&grad_x, off),
                None,
                i * o,
            )?);
        }
        Ok(GpuFakeQuant {
            ctx,
            offsets,
            total,
            w,
            w_fq,
            grad_y,
            grad_x,
            _params: params,
            forward,
            backward,
        })
    }

    fn upload(&self, buffer: &wgpu::Buffer, parts: &[Vec<f32>; 3]) {
        for (p, &off) in parts.iter().zip(&self.offsets) {
            self.ctx
                .queue
                .write_buffer(buffer, off as u64 * 4, bytemuck::cast_slice(p));
        }
    }

    fn run(
        &self,
        ops: &[wgquant::gpu::FakeQuantDispatch],
        out: &wgpu::Buffer,
    ) -> Result<[Vec<f32>; 3]> {
        let mut enc = self.ctx.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            ops.iter().for_each(|op| op.encode_in_pass(&mut pass));
        }
        self.ctx.queue.submit([enc.finish()]);
        let all = self.ctx.read_f32(out, self.total)?;
        let mut l = 0;
        Ok([0, 1, 2].map(|_| {
            let (i, o) = SHAPES[l];
            let off = self.offsets[l];
            l += 1;
            all[off..off + i * o].to_vec()
        }))
    }

    /// The fake-quantized weights (scales derived per group) of `w`.
    fn forward(&self, w: &[Vec<f32>; 3]) -> Result<[Vec<f32>; 3]> {
        self.upload(&self.w, w);
        self.run(&self.forward, &self.w_fq)
    }

    /// Straight-through: `dL/dw` from `dL/dw'` (for the `w` last given to `forward`).
    fn backward(&self, grad_fq: &[Vec<f32>; 3]) -> Result<[Vec<f32>; 3]> {
        self.upload(&self.grad_y, grad_fq);
        self.run(&self.backward, &self.grad_x)
    }
}

/// (accuracy, mean loss) of the network with weights `w` on the test set.
fn evaluate(w: &[Vec<f32>; 3], b: &[Vec<f32>; 3], x: &[f32], labels: &[usize]) -> (f64, f64) {
    let n = labels.len();
    let acts = forward(w, b, x, n);
    let (loss, _, correct) = softmax_xent(&acts[3], labels);
    (correct as f64 / n as f64, loss)
}

fn real_quantize(format: Format, w: &[Vec<f32>; 3]) -> Result<[Vec<f32>; 3]> {
    let mut out: [Vec<f32>; 3] = Default::default();
    for (l, &(i, o)) in SHAPES.iter().enumerate() {
        out[l] = QuantizedTensor::quantize(format, &w[l], o, i)?.dequantize();
    }
    Ok(out)
}

fn train(
    s: &Settings,
    init: &Net,
    data: &(Vec<f32>, Vec<usize>),
    qat: Option<&GpuFakeQuant>,
) -> Result<Net> {
    let mut net = init.clone();
    let mut adam = Adam::new(&net);
    let mut rng = Rng::new(s.seed ^ 0xBA7C);
    let (mut xb, mut yb) = (vec![0.0; s.batch * INPUTS], vec![0; s.batch]);
    for step in 0..s.steps {
        for j in 0..s.batch {
            let i = (rng.next_u64() % s.train as u64) as usize;
            xb[j * INPUTS..(j + 1) * INPUTS].copy_from_slice(&data.0[i * INPUTS..(i + 1) * INPUTS]);
            yb[j] = data.1[i];
        }
        let w_used = match qat {
            Some(g) => g.forward(&net.w)?,
            None => net.w.clone(),
        };
        let acts = forward(&w_used, &net.b, &xb, s.batch);
        let (_, dlogits, _) = softmax_xent(&acts[3], &yb);
        let (gw, gb) = backward(&w_used, &acts, dlogits, s.batch);
        let gw = match qat {
            Some(g) => g.backward(&gw)?,
            None => gw,
        };
        let lr = s.lr * (1.0 - step as f32 / s.steps as f32);
        adam.step(&mut net, &gw, &gb, lr);
    }
    Ok(net)
}

pub fn run(ctx: &GpuContext, s: &Settings) -> Result<Report> {
    let cfg = FakeQuantConfig::of_format(s.format)?;
    if SHAPES.iter().any(|&(i, _)| i % cfg.group != 0) {
        return Err(wgquant::Error::InvalidArgument(format!(
            "{}: the layers' inputs ({INPUTS}, {HIDDEN}) must be whole groups; use a g32 format",
            s.format
        )));
    }
    let mut rng = Rng::new(s.seed);
    let teacher = Net {
        w: [
            rng.normal_vec(INPUTS * TEACHER_HIDDEN)
                .into_iter()
                .map(|v| v * 0.5)
                .collect(),
            rng.normal_vec(TEACHER_HIDDEN * CLASSES),
            vec![],
        ],
        b: [
            rng.normal_vec(TEACHER_HIDDEN)
                .into_iter()
                .map(|v| v * 0.5)
                .collect(),
            vec![0.0; CLASSES],
            vec![],
        ],
    };
    let train_set = dataset(&teacher, &mut rng, s.train);
    let (tx, ty) = dataset(&teacher, &mut rng, s.test);
    let init = Net::init(&mut rng);

    let t = Instant::now();
    let float = train(s, &init, &train_set, None)?;
    let float_secs = t.elapsed().as_secs_f64();
    let gpu = GpuFakeQuant::new(ctx, cfg)?;
    let t = Instant::now();
    let qat = train(s, &init, &train_set, Some(&gpu))?;
    let qat_secs = t.elapsed().as_secs_f64();

    let (float_acc, float_loss) = evaluate(&float.w, &float.b, &tx, &ty);
    let (float_rtn_acc, float_rtn_loss) =
        evaluate(&real_quantize(s.format, &float.w)?, &float.b, &tx, &ty);
    let (qat_fake_acc, _) = evaluate(&gpu.forward(&qat.w)?, &qat.b, &tx, &ty);
    let (qat_real_acc, qat_real_loss) =
        evaluate(&real_quantize(s.format, &qat.w)?, &qat.b, &tx, &ty);
    Ok(Report {
        float_acc,
        float_loss,
        float_rtn_acc,
        float_rtn_loss,
        qat_fake_acc,
        qat_real_acc,
        qat_real_loss,
        float_secs,
        qat_secs,
    })
}

fn main() -> Result<()> {
    let format: Format = match std::env::args().nth(1) {
        Some(f) => f.parse()?,
        None => "int4_g32".parse()?,
    };
    let ctx = GpuContext::from_env()?;
    let mut s = Settings::full(format);
    if let Some(seed) = std::env::args().nth(2) {
        s.seed = seed
            .parse()
            .map_err(|_| wgquant::Error::InvalidArgument(format!("bad seed '{seed}'")))?;
    }
    println!(
        "QAT on {}: MLP {INPUTS}-{HIDDEN}-{HIDDEN}-{CLASSES}, {} steps of {}, {} train / {} test, {format}",
        ctx.describe(),
        s.steps,
        s.batch,
        s.train,
        s.test
    );
    let r = run(&ctx, &s)?;
    println!("{:<40} {:>9} {:>9}", "model (test set)", "accuracy", "xent");
    println!(
        "{:<40} {:>8.2}% {:>9.4}",
        "float",
        100.0 * r.float_acc,
        r.float_loss
    );
    println!(
        "{:<40} {:>8.2}% {:>9.4}",
        format!("float -> {format} RTN (post-training)"),
        100.0 * r.float_rtn_acc,
        r.float_rtn_loss
    );
    println!(
        "{:<40} {:>8.2}% {:>9.4}",
        format!("QAT -> {format} (real quantization)"),
        100.0 * r.qat_real_acc,
        r.qat_real_loss
    );
    println!(
        "QAT fake-quant (GPU) accuracy {:.2}% (equals real: {}); training {:.1} s float, {:.1} s QAT",
        100.0 * r.qat_fake_acc,
        r.qat_fake_acc == r.qat_real_acc,
        r.float_secs,
        r.qat_secs
    );
    Ok(())
}
