//! Sampling, generation and perplexity on a [`GpuModel`].

use super::gpu::{GpuModel, Output};
use crate::rng::Rng;
use crate::{Error, Result};
use std::time::Instant;

/// How the next token is chosen from the logits.
#[derive(Clone, Debug)]
pub struct Sampler {
    /// 0 picks the most likely token (greedy, deterministic); otherwise logits are divided
    /// by it before sampling.
    pub temperature: f32,
    /// Sample among the `top_k` most likely tokens only (0: all).
    pub top_k: usize,
    /// Sample among the smallest set of tokens whose probability reaches `top_p` (1: all).
    pub top_p: f32,
    rng: Rng,
}

impl Sampler {
    pub fn greedy() -> Sampler {
        Sampler::new(0.0, 0, 1.0, 0)
    }

    pub fn new(temperature: f32, top_k: usize, top_p: f32, seed: u64) -> Sampler {
        Sampler {
            temperature,
            top_k,
            top_p,
            rng: Rng::new(seed),
        }
    }

    /// Check the parameters (finite, non-negative temperature; `top_p` in (0, 1]).
    pub fn validate(&self) -> Result<()> {
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return Err(Error::InvalidArgument(format!(
                "temperature {} must be a finite number >= 0",
                self.temperature
            )));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(Error::InvalidArgument(format!(
                "top-p {} must be in (0, 1]",
                self.top_p
            )));
        }
        Ok(())
    }

    /// The next token. Non-finite logits are an error (a broken model or kernel), never
    /// silently sampled.
    pub fn sample(&mut self, logits: &[f32]) -> Result<u32> {
        if logits.is_empty() {
            return Err(Error::InvalidArgument("no logits to sample from".into()));
        }
        if let Some(i) = logits.iter().position(|v| !v.is_finite()) {
            return Err(Error::Gpu(format!(
                "logit {i} is {} (the forward pass produced a non-finite value)",
                logits[i]
            )));
        }
        let argmax = logits
            .iter()
            .enumerate()
            .fold(0, |best, (i, &v)| if v > logits[best] { i } else { best });
        if self.temperature == 0.0 {
            return Ok(argmax as u32);
        }
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
        if self.top_k > 0 {
            order.truncate(self.top_k);
        }
        let t = self.temperature as f64;
        let m = logits[argmax] as f64;
        let mut probs: Vec<f64> = order
            .iter()
            .map(|&i| ((logits[i] as f64 - m) / t).exp())
            .collect();
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
        let mut keep = probs.len();
        let mut acc = 0.0;
        for (i, p) in probs.iter().enumerate() {
            acc += p;
            if acc >= self.top_p as f64 {
                keep = i + 1;
                break;
            }
        }
        let kept: f64 = probs[..keep].iter().sum();
        let mut u = self.rng.uniform() * kept;
        for (i, p) in probs[..keep].iter().enumerate() {
            if u < *p {
                return Ok(order[i] as u32);
            }
            u -= p;
        }
        Ok(order[keep - 1] as u32)
    }
}

/// Timings of one generation.
#[derive(Clone, Debug, Default)]
pub struct GenerationStats {
    pub prompt_tokens: usize,
    pub prompt_seconds: f64,
    pub generated_tokens: usize,
    pub generation_seconds: f64,
}

impl GenerationStats {
    pub fn prompt_tokens_per_second(&self) -> f64 {
        self.prompt_tokens as f64 / self.prompt_seconds.max(1e-9)
    }
    pub fn generation_tokens_per_second(&self) -> f64 {
        self.generated_tokens as f64 / self.generation_seconds.max(1e-9)
    }
}

/// Run `prompt` from an empty context, then generate up to `max_tokens` tokens, calling
/// `on_token` with each as soon as it is chosen; stops early after a token for which
/// `is_end` is true (that token is passed to `on_token` too). Each generated token costs
/// one forward submit.
pub fn generate(
    model: &mut GpuModel,
    prompt: &[u32],
    max_tokens: usize,
    sampler: &mut Sampler,
    is_end: impl Fn(u32) -> bool,
    mut on_token: impl FnMut(u32) -> Result<()>,
) -> Result<GenerationStats> {
    sampler.validate()?;
    if prompt.is_empty() {
        return Err(Error::InvalidArgument(
            "the prompt is empty: generation needs at least one token".into(),
        ));
    }
    model.reset();
    let t0 = Instant::now();
    let mut logits = model.forward(prompt, Output::LastLogits)?;
    let mut stats = GenerationStats {
        prompt_tokens: prompt.len(),
        prompt_seconds: t0.elapsed().as_secs_f64(),
        ..Default::default()
    };
    let t1 = Instant::now();
    for i in 0..max_tokens {
        let next = sampler.sample(&logits)?;
        stats.generated_tokens += 1;
        on_token(next)?;
        if is_end(next) || i + 1 == max_tokens {
            break;
        }
        logits = model.forward(&[next], Output::LastLogits)?;
    }
    stats.generation_seconds = t1.elapsed().as_secs_f64();
    Ok(stats)
}

/// Perplexity the way llama.cpp's `llama-perplexity` computes it.
#[derive(Clone, Debug)]
pub struct Perplexity {
    /// exp(mean negative log-likelihood).
    pub ppl: f64,
    /// llama.cpp's uncertainty estimate of `ppl`.
    pub ppl_error: f64,
    /// Chunks scored.
    pub chunks: usize,
    /// Predictions scored.
    pub scored: usize,
    /// Running perplexity after each chunk (what llama.cpp prints as `[1]a,[2]b,...`).
    pub running: Vec<f64>,
}

/// What [`perplexity`] runs: the log-probability of each next token of a chunk, from an
/// empty context (element `i` is `log p(chunk[i + 1])` given `chunk[..=i]`).
pub trait ChunkScorer {
    fn score(&mut self, chunk: &[u32]) -> Result<Vec<f32>>;
}

impl ChunkScorer for GpuModel {
    fn score(&mut self, chunk: &[u32]) -> Result<Vec<f32>> {
        self.reset();
        self.log_probs(chunk)
    }
}

impl ChunkScorer for super::calibrate::CpuScorer {
    fn score(&mut self, chunk: &[u32]) -> Result<Vec<f32>> {
        self.log_probs(chunk)
    }
}

/// Score `tokens` (the whole text, tokenized without BOS) in non-overlapping chunks of
/// `ctx` tokens, each run from an empty cache; in a chunk only the predictions of the
/// second half count (positions `ctx / 2 .. ctx - 1` predicting the next token). With
/// `bos`, the first token of every chunk is replaced by it (llama.cpp does this when the
/// model's metadata asks for BOS). `max_chunks` limits the work; `on_chunk` sees progress.
pub fn perplexity(
    model: &mut dyn ChunkScorer,
    tokens: &[u32],
    ctx: usize,
    bos: Option<u32>,
    max_chunks: Option<usize>,
    mut on_chunk: impl FnMut(usize, usize, f64),
) -> Result<Perplexity> {
    if ctx < 4 {
        return Err(Error::InvalidArgument(format!(
            "a context of {ctx} tokens is too short to score (at least 4)"
        )));
    }
    let available = tokens.len() / ctx;
    if available == 0 {
        return Err(Error::InvalidArgument(format!(
            "the text has {} tokens; perplexity with --ctx {ctx} needs at least {ctx}",
            tokens.len()
        )));
    }
    let chunks = max_chunks.map_or(available, |m| m.min(available));
    let first = ctx / 2;
    let (mut nll, mut nll2, mut count) = (0.0f64, 0.0f64, 0usize);
    let mut running = Vec::with_capacity(chunks);
    for c in 0..chunks {
        let mut chunk = tokens[c * ctx..(c + 1) * ctx].to_vec();
        if let Some(b) = bos {
            chunk[0] = b;
        }
        let lp = model.score(&chunk)?;
        for &v in &lp[first..ctx - 1] {
            if !v.is_finite() {
                return Err(Error::Gpu(format!(
                    "a log-probability in chunk {c} is {v} (non-finite output)"
                )));
            }
            let v = -(v as f64);
            nll += v;
            nll2 += v * v;
            count += 1;
        }
        running.push((nll / count as f64).exp());
        on_chunk(c + 1, chunks, *running.last().unwrap());
    }
    let mean = nll / count as f64;
    let ppl = mean.exp();
    let var = nll2 / count as f64 - mean * mean;
    let ppl_error = if var > 0.0 && count > 1 {
        (var / (count - 1) as f64).sqrt() * ppl
    } else {
        0.0
    };
    Ok(Perplexity {
        ppl,
        ppl_error,
        chunks,
        scored: count,
        running,
    })
}
