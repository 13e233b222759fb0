//! The calibration pass: a llama model run block by block on the CPU (f32, [`crate::linalg`])
//! over calibration sequences, so that whole-model quantization can see, and change, each
//! block's weights between the inputs it computes.
//!
//! The residual stream of every calibration token is kept in memory (`tokens` x `d_model`
//! f32: 37 MB for 16k tokens of SmolLM2), and [`CalibrationPass::run_block`] advances it
//! through one block. Inside the block, each of the four inputs that linear layers read
//! ([`Input`]) is handed to a [`BlockHooks`] before those layers run, with the weights
//! still open to change: GPTQ quantizes a layer there, on the inputs the already-quantized
//! layers before it produced, which is the paper's sequential order.
//!
//! Why on the CPU and not through [`super::GpuModel`]: the pass must stop inside every
//! block, observe all tokens' inputs (a Hessian needs them all) and continue with weights
//! that have changed since the block began; the GPU forward is one prepared command buffer
//! per batch with its weights fixed at load time. On the machines the project tests on
//! (lavapipe, itself a CPU), the f32 kernels here are as fast as the GPU path would be.
//!
//! Arithmetic follows [`super::cpu`] (the f64 reference) in f32; a test checks logits
//! against it.

use super::config::Config;
use super::tokenizer::Tokenizer;
use super::weights::Weights;
use crate::linalg::{matmul_nt, parallel_for, View};
use crate::{Error, Result};

/// The token sequences a pass runs: each from an empty context, as a chunk of
/// `perplexity` is.
#[derive(Clone, Debug, PartialEq)]
pub struct CalibTokens {
    seqs: Vec<Vec<u32>>,
}

impl CalibTokens {
    /// Sequences as given (each non-empty).
    pub fn new(seqs: Vec<Vec<u32>>) -> Result<CalibTokens> {
        if seqs.is_empty() || seqs.iter().any(|s| s.is_empty()) {
            return Err(Error::Calibration(
                "calibration needs at least one non-empty token sequence".into(),
            ));
        }
        Ok(CalibTokens { seqs })
    }

    /// `text` tokenized (control tokens not parsed: calibration text is plain text), cut
    /// into sequences of `ctx` tokens, at most `max_tokens` in all; a shorter last piece is
    /// kept if it has at least `ctx / 4` tokens. Each sequence starts with BOS where the
    /// model's metadata asks for it.
    pub fn from_text(
        tokenizer: &Tokenizer,
        text: &str,
        ctx: usize,
        max_tokens: usize,
    ) -> Result<CalibTokens> {
        if ctx < 2 {
            return Err(Error::InvalidArgument(format!(
                "a calibration context of {ctx} tokens is too short (at least 2)"
            )));
        }
        let ids = tokenizer.encode(text, false);
        let bos = tokenizer.add_bos().then(|| tokenizer.bos()).flatten();
        let body = ctx - bos.is_some() as usize;
        let mut seqs = Vec::new();
        let mut total = 0;
        for piece in ids.chunks(body) {
            if piece.len() < (ctx / 4).max(2) && !seqs.is_empty() {
                break;
            }
            let mut s: Vec<u32> = bos.into_iter().collect();
            s.extend_from_slice(piece);
            let room = max_tokens - total;
            if room < 2 {
                break;
            }
            s.truncate(room);
            total += s.len();
            seqs.push(s);
        }
        if seqs.is_empty() || total < 2 {
            return Err(Error::Calibration(format!(
                "the calibration text has {} tokens; at least 2 are needed",
                ids.len()
            )));
        }
        CalibTokens::new(seqs)
    }

    pub fn sequences(&self) -> &[Vec<u32>] {
        &self.seqs
    }

    /// Tokens in all sequences.
    pub fn tokens(&self) -> usize {
        self.seqs.iter().map(|s| s.len()).sum()
    }
}

/// The four inputs of a block that linear layers read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Input {
    /// RMSNorm of the residual stream (`attn_norm`): Q, K and V read it.
    Attention,
    /// The attention heads' output: `attn_output` reads it.
    AttentionOutput,
    /// RMSNorm of the residual stream (`ffn_norm`): gate and up read it.
    FeedForward,
    /// `silu(gate) * up`: down reads it.
    FeedForwardHidden,
}

impl Input {
    pub const ALL: [Input; 4] = [
        Input::Attention,
        Input::AttentionOutput,
        Input::FeedForward,
        Input::FeedForwardHidden,
    ];

    /// Values per token (the row length of the layers that read it).
    pub fn width(self, c: &Config) -> usize {
        match self {
            Input::FeedForwardHidden => c.d_ff,
            _ => c.d_model,
        }
    }

    /// The layers that read this input, in the order the block runs them.
    pub fn linears(self) -> &'static [Linear] {
        match self {
            Input::Attention => &[Linear::Q, Linear::K, Linear::V],
            Input::AttentionOutput => &[Linear::Output],
            Input::FeedForward => &[Linear::Gate, Linear::Up],
            Input::FeedForwardHidden => &[Linear::Down],
        }
    }
}

/// A block's linear layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Linear {
    Q,
    K,
    V,
    Output,
    Gate,
    Up,
    Down,
}

impl Linear {
    pub const ALL: [Linear; 7] = [
        Linear::Q,
        Linear::K,
        Linear::V,
        Linear::Output,
        Linear::Gate,
        Linear::Up,
        Linear::Down,
    ];

    /// The GGUF role (`blk.N.<role>.weight`).
    pub fn role(self) -> &'static str {
        match self {
            Linear::Q => "attn_q",
            Linear::K => "attn_k",
            Linear::V => "attn_v",
            Linear::Output => "attn_output",
            Linear::Gate => "ffn_gate",
            Linear::Up => "ffn_up",
            Linear::Down => "ffn_down",
        }
    }

    /// The GGUF tensor name in block `layer`.
    pub fn tensor_name(self, layer: usize) -> String {
        format!("blk.{layer}.{}.weight", self.role())
    }

    /// The input this layer reads.
    pub fn input(self) -> Input {
        match self {
            Linear::Q | Linear::K | Linear::V => Input::Attention,
            Linear::Output => Input::AttentionOutput,
            Linear::Gate | Linear::Up => Input::FeedForward,
            Linear::Down => Input::FeedForwardHidden,
        }
    }
}

/// A row-major f32 matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    pub rows: usize,
    pub k: usize,
    pub data: Vec<f32>,
}

impl Matrix {
    pub fn new(rows: usize, k: usize, data: Vec<f32>) -> Matrix {
        assert_eq!(data.len(), rows * k);
        Matrix { rows, k, data }
    }

    fn view(&self) -> View<'_> {
        View::new(&self.data, self.rows, self.k)
    }
}

/// One block's weights in f32: what the pass multiplies by, changed by the hooks as the
/// block's layers are quantized.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockF32 {
    pub attn_norm: Vec<f32>,
    pub ffn_norm: Vec<f32>,
    /// The linear layers in [`Linear::ALL`] order.
    pub linears: [Matrix; 7],
}

impl BlockF32 {
    pub fn linear(&self, l: Linear) -> &Matrix {
        &self.linears[l as usize]
    }
    pub fn linear_mut(&mut self, l: Linear) -> &mut Matrix {
        &mut self.linears[l as usize]
    }

    /// Block `layer` of `w`, dequantized.
    pub fn from_weights(w: &Weights, layer: usize) -> BlockF32 {
        let l = &w.layers[layer];
        let m = |q: &crate::QuantizedTensor| Matrix::new(q.rows(), q.k(), q.dequantize());
        BlockF32 {
            attn_norm: l.attn_norm.clone(),
            ffn_norm: l.ffn_norm.clone(),
            linears: [
                m(&l.wq),
                m(&l.wk),
                m(&l.wv),
                m(&l.wo),
                m(&l.w_gate),
                m(&l.w_up),
                m(&l.w_down),
            ],
        }
    }
}

/// What a pass calls inside a block.
pub trait BlockHooks {
    /// `x` (`tokens` x `k`, row-major) is `input` of the block, computed with the weights
    /// as they are now; the layers that read it ([`Input::linears`]) run right after this
    /// returns, with whatever `w` then holds. A hook that changes the weights that
    /// produced `x` (a norm, for AWQ) must leave the product unchanged.
    fn input(&mut self, input: Input, x: &[f32], w: &mut BlockF32) -> Result<()>;
}

/// Hooks that only look (`f` sees every input).
pub struct Observe<F: FnMut(Input, &[f32]) -> Result<()>>(pub F);

impl<F: FnMut(Input, &[f32]) -> Result<()>> BlockHooks for Observe<F> {
    fn input(&mut self, input: Input, x: &[f32], _w: &mut BlockF32) -> Result<()> {
        (self.0)(input, x)
    }
}

/// The residual stream of every calibration token, advanced one block at a time.
pub struct CalibrationPass {
    config: Config,
    /// Start of each sequence in `hidden` (in tokens) and its length.
    seqs: Vec<(usize, usize)>,
    /// `tokens` x `d_model`.
    hidden: Vec<f32>,
    /// Blocks run so far.
    layer: usize,
}

impl CalibrationPass {
    /// The token embeddings of `tokens` (rows of `w.token_embd`, dequantized).
    pub fn new(w: &Weights, tokens: &CalibTokens) -> Result<CalibrationPass> {
        let c = w.config.clone();
        let d = c.d_model;
        let mut seqs = Vec::new();
        let mut hidden = Vec::with_capacity(tokens.tokens() * d);
        let mut row = vec![0f32; d];
        let format = w.token_embd.format();
        let codec = format.codec();
        let bv = codec.block_values();
        let row_bytes = format.row_bytes(d);
        for s in tokens.sequences() {
            if s.len() > c.context_length {
                return Err(Error::InvalidArgument(format!(
                    "a calibration sequence of {} tokens exceeds the model's context of {}",
                    s.len(),
                    c.context_length
                )));
            }
            seqs.push((hidden.len() / d, s.len()));
            for &t in s {
                let t = t as usize;
                if t >= c.vocab_size {
                    return Err(Error::InvalidArgument(format!(
                        "token id {t} is outside the vocabulary of {}",
                        c.vocab_size
                    )));
                }
                let bytes = &w.token_embd.bytes()[t * row_bytes..(t + 1) * row_bytes];
                let bb = codec.block_bytes();
                for (blk, out) in bytes.chunks_exact(bb).zip(row.chunks_exact_mut(bv)) {
                    codec.dequantize_block(blk, out);
                }
                hidden.extend_from_slice(&row);
            }
        }
        Ok(CalibrationPass {
            config: c,
            seqs,
            hidden,
            layer: 0,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }
    /// Tokens in the pass.
    pub fn tokens(&self) -> usize {
        self.hidden.len() / self.config.d_model
    }
    /// Blocks run so far (the index of the next one).
    pub fn layer(&self) -> usize {
        self.layer
    }
    /// The residual stream (`tokens` x `d_model`).
    pub fn hidden(&self) -> &[f32] {
        &self.hidden
    }

    /// Run the next block with `w` (hooks see its four inputs and may change `w` before
    /// each is used). With `advance` false the residual stream is left as it was (a look at
    /// the block's inputs only); otherwise it moves on to the next block.
    pub fn run_block(
        &mut self,
        w: &mut BlockF32,
        hooks: &mut dyn BlockHooks,
        advance: bool,
    ) -> Result<()> {
        let c = &self.config;
        let (d, kv, hd) = (c.d_model, c.kv_dim(), c.head_dim);
        let n = self.tokens();
        check_block(c, w)?;
        let mut hidden = self.hidden.clone();

        let xn = rms_norm_rows(&hidden, &w.attn_norm, c.rms_eps, d);
        hooks.input(Input::Attention, &xn, w)?;
        // The hook may have changed the norm (AWQ folds scales into it): recompute.
        let xn = rms_norm_rows(&hidden, &w.attn_norm, c.rms_eps, d);
        let x = View::new(&xn, n, d);
        let mut q = matmul_nt(x, w.linear(Linear::Q).view());
        let mut k = matmul_nt(x, w.linear(Linear::K).view());
        let v = matmul_nt(x, w.linear(Linear::V).view());
        for &(start, len) in &self.seqs {
            for p in 0..len {
                let t = start + p;
                rope(&mut q[t * d..(t + 1) * d], hd, c.rope_dims, c.rope_theta, p);
                rope(
                    &mut k[t * kv..(t + 1) * kv],
                    hd,
                    c.rope_dims,
                    c.rope_theta,
                    p,
                );
            }
        }
        let att = attention(c, &self.seqs, &q, &k, &v, n);
        drop((q, k, v, xn));
        hooks.input(Input::AttentionOutput, &att, w)?;
        let o = matmul_nt(View::new(&att, n, d), w.linear(Linear::Output).view());
        for (h, o) in hidden.iter_mut().zip(&o) {
            *h += o;
        }
        drop((att, o));

        let xn = rms_norm_rows(&hidden, &w.ffn_norm, c.rms_eps, d);
        hooks.input(Input::FeedForward, &xn, w)?;
        let xn = rms_norm_rows(&hidden, &w.ffn_norm, c.rms_eps, d);
        let x = View::new(&xn, n, d);
        let gate = matmul_nt(x, w.linear(Linear::Gate).view());
        let up = matmul_nt(x, w.linear(Linear::Up).view());
        drop(xn);
        let act: Vec<f32> = gate.iter().zip(&up).map(|(&g, &u)| silu(g) * u).collect();
        drop((gate, up));
        hooks.input(Input::FeedForwardHidden, &act, w)?;
        let down = matmul_nt(View::new(&act, n, c.d_ff), w.linear(Linear::Down).view());
        for (h, o) in hidden.iter_mut().zip(&down) {
            *h += o;
        }
        if advance {
            self.hidden = hidden;
            self.layer += 1;
        }
        Ok(())
    }

    /// The output head's input: the final RMSNorm of the residual stream (after every
    /// block has run).
    pub fn head_input(&self, output_norm: &[f32]) -> Vec<f32> {
        let c = &self.config;
        rms_norm_rows(&self.hidden, output_norm, c.rms_eps, c.d_model)
    }
}

/// A model's blocks in f32, to score text on the CPU (`wgquant perplexity --cpu`): the same
/// arithmetic as the calibration pass, so a score here is what calibration saw.
pub struct CpuScorer {
    blocks: Vec<BlockF32>,
    weights: Weights,
    output: Vec<f32>,
}

impl CpuScorer {
    /// Dequantize every matrix once (4 bytes per weight).
    pub fn new(w: &Weights) -> CpuScorer {
        CpuScorer {
            blocks: (0..w.config.n_layers)
                .map(|l| BlockF32::from_weights(w, l))
                .collect(),
            output: w.output_matrix().dequantize(),
            weights: w.clone(),
        }
    }

    /// Element `i` is `log p(tokens[i + 1])` given `tokens[..=i]`, from an empty context
    /// (`n - 1` values), as [`super::GpuModel::log_probs`].
    pub fn log_probs(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        let c = self.weights.config.clone();
        let seqs = CalibTokens::new(vec![tokens.to_vec()])?;
        let mut pass = CalibrationPass::new(&self.weights, &seqs)?;
        for b in &mut self.blocks {
            pass.run_block(b, &mut Observe(|_, _| Ok(())), true)?;
        }
        let head = pass.head_input(&self.weights.output_norm);
        let (d, v) = (c.d_model, c.vocab_size);
        let n = tokens.len();
        let out = View::new(&self.output, v, d);
        let mut lp = Vec::with_capacity(n - 1);
        // Logits of a few rows at a time (a row is the whole vocabulary).
        for r0 in (0..n - 1).step_by(32) {
            let rows = 32.min(n - 1 - r0);
            let logits = matmul_nt(View::new(&head, n, d).rows(r0, rows), out);
            for (i, row) in logits.chunks_exact(v).enumerate() {
                let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
                let lse = m + row.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln();
                lp.push((row[tokens[r0 + i + 1] as usize] as f64 - lse) as f32);
            }
        }
        Ok(lp)
    }
}

fn check_block(c: &Config, w: &BlockF32) -> Result<()> {
    let (d, kv, ff) = (c.d_model, c.kv_dim(), c.d_ff);
    let want = [(d, d), (kv, d), (kv, d), (d, d), (ff, d), (ff, d), (d, ff)];
    for (l, (m, &(rows, k))) in Linear::ALL.iter().zip(w.linears.iter().zip(&want)) {
        if m.rows != rows || m.k != k || m.data.len() != rows * k {
            return Err(Error::Model(format!(
                "{} is {} x {}; the model needs {rows} x {k}",
                l.role(),
                m.rows,
                m.k
            )));
        }
    }
    if w.attn_norm.len() != d || w.ffn_norm.len() != d {
        return Err(Error::Model(format!("a norm of the block is not {d} wide")));
    }
    Ok(())
}

/// Row-wise `x / sqrt(mean(x^2) + eps) * g` (the mean in f64, as the reference).
pub fn rms_norm_rows(x: &[f32], g: &[f32], eps: f32, d: usize) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    for (o, r) in out.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
        let ms = r.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / d as f64;
        let s = (1.0 / (ms + eps as f64).sqrt()) as f32;
        for ((o, &v), &gg) in o.iter_mut().zip(r).zip(g) {
            *o = v * s * gg;
        }
    }
    out
}

/// llama.cpp's "normal" RoPE, as [`super::cpu`] (angles in f64).
fn rope(x: &mut [f32], head_dim: usize, rope_dims: usize, theta: f32, pos: usize) {
    for head in x.chunks_exact_mut(head_dim) {
        for i in (0..rope_dims).step_by(2) {
            let freq = (theta as f64).powf(-(i as f64) / rope_dims as f64);
            let (s, c) = (pos as f64 * freq).sin_cos();
            let (a, b) = (head[i] as f64, head[i + 1] as f64);
            head[i] = (a * c - b * s) as f32;
            head[i + 1] = (a * s + b * c) as f32;
        }
    }
}

fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// Causal grouped-query attention of every sequence: `q` is `n` x `d_model`, `k` and `v`
/// `n` x `kv_dim`; the heads' outputs, `n` x `d_model`.
fn attention(
    c: &Config,
    seqs: &[(usize, usize)],
    q: &[f32],
    k: &[f32],
    v: &[f32],
    n: usize,
) -> Vec<f32> {
    let (d, kv, hd) = (c.d_model, c.kv_dim(), c.head_dim);
    let group = c.n_heads / c.n_kv_heads;
    let scale = 1.0 / (hd as f32).sqrt();
    let tasks: Vec<(usize, usize)> = (0..seqs.len())
        .flat_map(|s| (0..c.n_heads).map(move |h| (s, h)))
        .collect();
    let mut out = vec![0f32; n * d];
    let results: Vec<std::sync::Mutex<Vec<f32>>> = tasks
        .iter()
        .map(|_| std::sync::Mutex::new(Vec::new()))
        .collect();
    parallel_for(tasks.len(), |ti| {
        let (s, h) = tasks[ti];
        let (start, len) = seqs[s];
        let kvh = h / group;
        let qv = View::new(&q[start * d..(start + len) * d], len, d).columns(h * hd, hd);
        let kvv = View::new(&k[start * kv..(start + len) * kv], len, kv).columns(kvh * hd, hd);
        // V^T of this head: hd x len, so P V is again a product of rows.
        let mut vt = vec![0f32; hd * len];
        for p in 0..len {
            for i in 0..hd {
                vt[i * len + p] = v[(start + p) * kv + kvh * hd + i];
            }
        }
        // Query rows in chunks, each against the keys up to its last row only (causal).
        let mut o = vec![0f32; len * hd];
        for i0 in (0..len).step_by(ATTENTION_CHUNK) {
            let i1 = (i0 + ATTENTION_CHUNK).min(len);
            let mut scores = matmul_nt_serial(qv.rows(i0, i1 - i0), kvv.rows(0, i1));
            for (r, row) in scores.chunks_exact_mut(i1).enumerate() {
                let (seen, future) = row.split_at_mut(i0 + r + 1);
                let m = seen
                    .iter()
                    .fold(f32::NEG_INFINITY, |a, &b| a.max(b * scale));
                let mut sum = 0f32;
                for x in seen.iter_mut() {
                    *x = (*x * scale - m).exp();
                    sum += *x;
                }
                let inv = 1.0 / sum;
                for x in seen.iter_mut() {
                    *x *= inv;
                }
                future.fill(0.0);
            }
            crate::linalg::matmul_nt_into(
                View::new(&scores, i1 - i0, i1),
                View::new(&vt, hd, len).columns(0, i1),
                &mut o[i0 * hd..i1 * hd],
                hd,
                false,
            );
        }
        *results[ti].lock().expect("attention worker") = o;
    });
    for (&(s, h), r) in tasks.iter().zip(results) {
        let (start, len) = seqs[s];
        let o = r.into_inner().expect("attention worker");
        for p in 0..len {
            out[(start + p) * d + h * hd..(start + p) * d + (h + 1) * hd]
                .copy_from_slice(&o[p * hd..(p + 1) * hd]);
        }
    }
    out
}

/// Query rows per step of [`attention`].
const ATTENTION_CHUNK: usize = 64;

fn matmul_nt_serial(a: View, b: View) -> Vec<f32> {
    let mut c = vec![0f32; a.rows * b.rows];
    crate::linalg::matmul_nt_into(a, b, &mut c, b.rows, false);
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::gguf;
    use crate::llama::synthetic::TinyLlama;
    use crate::llama::CpuModel;
    use crate::Format;

    pub(crate) fn weights(spec: &TinyLlama) -> Weights {
        let (meta, tensors) = spec.build().unwrap();
        let bytes = gguf::model_bytes(&meta, &tensors).unwrap();
        Weights::from_gguf(gguf::read_model_bytes(&bytes).unwrap()).unwrap()
    }

    fn seqs(lens: &[usize], vocab: usize) -> CalibTokens {
        let mut rng = crate::rng::Rng::new(11);
        CalibTokens::new(
            lens.iter()
                .map(|&n| {
                    (0..n)
                        .map(|_| (rng.next_u64() % vocab as u64) as u32)
                        .collect()
                })
                .collect(),
        )
        .unwrap()
    }

    /// Blocks run one at a time in f32 give the f64 reference's logits at every position of
    /// every sequence (sequences of several lengths, longer than one attention chunk).
    #[test]
    fn pass_matches_the_cpu_reference() {
        for spec in [
            TinyLlama::default(),
            TinyLlama {
                n_kv_heads: 1,
                tied: false,
                format: Format::Q8_0,
                n_layers: 3,
                seed: 4,
                ..TinyLlama::default()
            },
        ] {
            let w = weights(&spec);
            let toks = seqs(&[70, 5, 1], spec.vocab);
            let mut pass = CalibrationPass::new(&w, &toks).unwrap();
            let mut seen = Vec::new();
            for l in 0..spec.n_layers {
                let mut block = BlockF32::from_weights(&w, l);
                let mut hooks = Observe(|input: Input, x: &[f32]| {
                    seen.push((l, input, x.len()));
                    Ok(())
                });
                pass.run_block(&mut block, &mut hooks, true).unwrap();
            }
            assert_eq!(seen.len(), 4 * spec.n_layers);
            assert_eq!(seen[3], (0, Input::FeedForwardHidden, 76 * spec.d_ff));
            let head = pass.head_input(&w.output_norm);
            let out = w.output_matrix();
            let logits = matmul_nt(
                View::new(&head, pass.tokens(), spec.d_model),
                View::new(&out.dequantize(), out.rows(), out.k()),
            );
            let mut cpu = CpuModel::new(&w);
            let mut t = 0;
            for s in toks.sequences() {
                cpu.reset();
                for want in cpu.forward(s).unwrap() {
                    let got = &logits[t * spec.vocab..(t + 1) * spec.vocab];
                    let num: f64 = want
                        .iter()
                        .zip(got)
                        .map(|(a, &b)| (a - b as f64).powi(2))
                        .sum();
                    let den: f64 = want.iter().map(|a| a * a).sum();
                    assert!(num / den < 1e-9, "{spec:?} token {t}: NMSE {}", num / den);
                    t += 1;
                }
            }
        }
    }

    /// A look (`advance` false) leaves the stream where it was.
    #[test]
    fn a_look_does_not_advance() {
        let spec = TinyLlama::default();
        let w = weights(&spec);
        let mut pass = CalibrationPass::new(&w, &seqs(&[9], spec.vocab)).unwrap();
        let before = pass.hidden().to_vec();
        let mut block = BlockF32::from_weights(&w, 0);
        pass.run_block(&mut block, &mut Observe(|_, _| Ok(())), false)
            .unwrap();
        assert_eq!(pass.hidden(), &before[..]);
        assert_eq!(pass.layer(), 0);
    }

    #[test]
    fn bad_input_is_an_error() {
        let spec = TinyLlama::default();
        let w = weights(&spec);
        assert!(CalibTokens::new(vec![]).is_err());
        assert!(CalibTokens::new(vec![vec![]]).is_err());
        let bad = CalibTokens::new(vec![vec![spec.vocab as u32]]).unwrap();
        assert!(matches!(
            CalibrationPass::new(&w, &bad),
            Err(Error::InvalidArgument(_))
        ));
        let mut pass = CalibrationPass::new(&w, &seqs(&[4], spec.vocab)).unwrap();
        let mut block = BlockF32::from_weights(&w, 0);
        block.linears[2] = Matrix::new(1, 1, vec![0.0]);
        assert!(matches!(
            pass.run_block(&mut block, &mut Observe(|_, _| Ok(())), true),
            Err(Error::Model(_))
        ));
    }
}
