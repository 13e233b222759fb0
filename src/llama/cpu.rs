//! The reference forward pass: weights dequantized with the formats' exact CPU rules, every
//! operation in f64. Slow and simple on purpose; the GPU pass is tested against it.

use super::config::Config;
use super::weights::Weights;
use crate::{Error, Result};

struct Matrix {
    k: usize,
    data: Vec<f32>,
}

impl Matrix {
    fn from(q: &crate::QuantizedTensor) -> Matrix {
        Matrix {
            k: q.k(),
            data: q.dequantize(),
        }
    }

    /// `w x` for one activation vector.
    fn apply(&self, x: &[f64]) -> Vec<f64> {
        debug_assert_eq!(x.len(), self.k);
        self.data
            .chunks_exact(self.k)
            .map(|row| row.iter().zip(x).map(|(&w, &v)| w as f64 * v).sum())
            .collect()
    }
}

struct Layer {
    attn_norm: Vec<f32>,
    wq: Matrix,
    wk: Matrix,
    wv: Matrix,
    wo: Matrix,
    ffn_norm: Vec<f32>,
    w_gate: Matrix,
    w_up: Matrix,
    w_down: Matrix,
    /// Rotated keys and values of every position so far, `kv_dim` each.
    k_cache: Vec<Vec<f64>>,
    v_cache: Vec<Vec<f64>>,
}

/// The CPU reference model with its own KV cache.
pub struct CpuModel {
    config: Config,
    token_embd: Matrix,
    layers: Vec<Layer>,
    output_norm: Vec<f32>,
    output: Option<Matrix>,
    pos: usize,
}

impl CpuModel {
    /// Dequantize every weight.
    pub fn new(w: &Weights) -> CpuModel {
        let layers = w
            .layers
            .iter()
            .map(|l| Layer {
                attn_norm: l.attn_norm.clone(),
                wq: Matrix::from(&l.wq),
                wk: Matrix::from(&l.wk),
                wv: Matrix::from(&l.wv),
                wo: Matrix::from(&l.wo),
                ffn_norm: l.ffn_norm.clone(),
                w_gate: Matrix::from(&l.w_gate),
                w_up: Matrix::from(&l.w_up),
                w_down: Matrix::from(&l.w_down),
                k_cache: Vec::new(),
                v_cache: Vec::new(),
            })
            .collect();
        CpuModel {
            config: w.config.clone(),
            token_embd: Matrix::from(&w.token_embd),
            layers,
            output_norm: w.output_norm.clone(),
            output: w.output.as_ref().map(Matrix::from),
            pos: 0,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Tokens processed since the last reset.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Forget the context.
    pub fn reset(&mut self) {
        self.pos = 0;
        for l in &mut self.layers {
            l.k_cache.clear();
            l.v_cache.clear();
        }
    }

    /// Run `tokens` after the context so far; the logits after each of them.
    pub fn forward(&mut self, tokens: &[u32]) -> Result<Vec<Vec<f64>>> {
        tokens.iter().map(|&t| self.step(t)).collect()
    }

    fn step(&mut self, token: u32) -> Result<Vec<f64>> {
        let c = &self.config;
        let t = token as usize;
        if t >= c.vocab_size {
            return Err(Error::InvalidArgument(format!(
                "token id {token} is outside the vocabulary of {}",
                c.vocab_size
            )));
        }
        let (d, hd) = (c.d_model, c.head_dim);
        let group = c.n_heads / c.n_kv_heads;
        let pos = self.pos;
        let mut x: Vec<f64> = self.token_embd.data[t * d..(t + 1) * d]
            .iter()
            .map(|&v| v as f64)
            .collect();
        for l in &mut self.layers {
            let xn = rms_norm(&x, &l.attn_norm, c.rms_eps);
            let mut q = l.wq.apply(&xn);
            let mut k = l.wk.apply(&xn);
            let v = l.wv.apply(&xn);
            rope(&mut q, hd, c.rope_dims, c.rope_theta, pos);
            rope(&mut k, hd, c.rope_dims, c.rope_theta, pos);
            l.k_cache.push(k);
            l.v_cache.push(v);
            let mut att = vec![0.0; d];
            let scale = 1.0 / (hd as f64).sqrt();
            for h in 0..c.n_heads {
                let kvh = h / group;
                let qh = &q[h * hd..(h + 1) * hd];
                let scores: Vec<f64> = l
                    .k_cache
                    .iter()
                    .map(|kj| dot(qh, &kj[kvh * hd..(kvh + 1) * hd]) * scale)
                    .collect();
                let p = softmax(&scores);
                for (pj, vj) in p.iter().zip(&l.v_cache) {
                    for (a, &vv) in att[h * hd..(h + 1) * hd]
                        .iter_mut()
                        .zip(&vj[kvh * hd..(kvh + 1) * hd])
                    {
                        *a += pj * vv;
                    }
                }
            }
            for (xi, o) in x.iter_mut().zip(l.wo.apply(&att)) {
                *xi += o;
            }
            let xn = rms_norm(&x, &l.ffn_norm, c.rms_eps);
            let gate = l.w_gate.apply(&xn);
            let up = l.w_up.apply(&xn);
            let h: Vec<f64> = gate.iter().zip(&up).map(|(&g, &u)| silu(g) * u).collect();
            for (xi, o) in x.iter_mut().zip(l.w_down.apply(&h)) {
                *xi += o;
            }
        }
        self.pos += 1;
        let xn = rms_norm(&x, &self.output_norm, c.rms_eps);
        Ok(self.output.as_ref().unwrap_or(&self.token_embd).apply(&xn))
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `x / sqrt(mean(x^2) + eps) * w`.
pub(crate) fn rms_norm(x: &[f64], w: &[f32], eps: f32) -> Vec<f64> {
    let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    let r = 1.0 / (ms + eps as f64).sqrt();
    x.iter().zip(w).map(|(&v, &g)| v * r * g as f64).collect()
}

/// llama.cpp's "normal" RoPE (the GGUF converter permutes Q and K rows to suit it): in each
/// head, the pair (2i, 2i + 1) for 2i < `rope_dims` turns by `pos * theta^(-2i / rope_dims)`.
pub(crate) fn rope(x: &mut [f64], head_dim: usize, rope_dims: usize, theta: f32, pos: usize) {
    for head in x.chunks_exact_mut(head_dim) {
        for i in (0..rope_dims).step_by(2) {
            let freq = (theta as f64).powf(-(i as f64) / rope_dims as f64);
            let (s, c) = (pos as f64 * freq).sin_cos();
            let (a, b) = (head[i], head[i + 1]);
            head[i] = a * c - b * s;
            head[i + 1] = a * s + b * c;
        }
    }
}

pub(crate) fn softmax(x: &[f64]) -> Vec<f64> {
    let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = x.iter().map(|v| (v - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

fn silu(x: f64) -> f64 {
    x / (1.0 + (-x).exp())
}

/// `log softmax(logits)[target]`.
pub fn log_prob(logits: &[f64], target: usize) -> f64 {
    let m = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let lse = m + logits.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
    logits[target] - lse
}
