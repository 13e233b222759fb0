//! The llama forward pass on the GPU. Every matmul runs through wgquant's kernels (GEMV for a
//! generated token, GEMM for a prompt); RMSNorm, RoPE, attention over a KV cache, SwiGLU, the
//! residual adds and the log-probabilities are small WGSL kernels in `shaders/llama/`. Weights
//! are uploaded once and never come back; one forward call is one submit.

use super::config::Config;
use super::weights::Weights;
use crate::gpu::plan::check_fits;
use crate::gpu::{grid_1d, Dispatch, GpuContext, GpuWeight, Kernels};
use crate::{Error, Format, Result};
use std::collections::HashMap;

/// What a forward call returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Output {
    /// The logits after the last token (`vocab` values): generation.
    LastLogits,
    /// The logits after every token (`n * vocab` values): tests and scoring.
    AllLogits,
    /// `log p(next token)` after every token (`n` values; see [`GpuModel::log_probs`]).
    LogProbs,
}

/// Options of [`GpuModel::new`].
#[derive(Clone, Copy, Debug)]
pub struct GpuModelOptions {
    /// Longest context (prompt plus generated tokens) the KV cache holds.
    pub max_context: usize,
    /// Most tokens per forward submit; longer inputs are split. Lowered automatically where
    /// a buffer would exceed the device's binding limit.
    pub max_batch: usize,
}

impl Default for GpuModelOptions {
    fn default() -> Self {
        GpuModelOptions {
            max_context: 2048,
            max_batch: 512,
        }
    }
}

struct Layer {
    attn_norm: wgpu::Buffer,
    wq: GpuWeight,
    wk: GpuWeight,
    wv: GpuWeight,
    wo: GpuWeight,
    ffn_norm: wgpu::Buffer,
    w_gate: GpuWeight,
    w_up: GpuWeight,
    w_down: GpuWeight,
    k_cache: wgpu::Buffer,
    v_cache: wgpu::Buffer,
}

/// The model's own small kernels, specialised to its shape by override constants.
struct Ops {
    rms_norm: wgpu::ComputePipeline,
    rope: wgpu::ComputePipeline,
    attention: wgpu::ComputePipeline,
    swiglu: wgpu::ComputePipeline,
    add_into: wgpu::ComputePipeline,
    log_prob: wgpu::ComputePipeline,
}

/// Invocations per workgroup of the element-wise and RoPE kernels, and the workgroup memory
/// each op declares (kept in step with `shaders/llama/`).
const OP_WG: usize = 64;
const OP_KERNELS: [(&str, u32, u32); 4] = [
    ("rms_norm", 64 * 4, 64),
    ("attention", (256 + 64) * 4, 64),
    ("log_prob", 256 * 4, 256),
    ("rope", 0, 64),
];
/// Largest head dimension the attention kernel holds (`MAX_HEAD_DIM`).
const MAX_HEAD_DIM: usize = 256;

/// One op pipeline: its WGSL sources (after `shaders/llama/common.wgsl`), entry point and
/// override constants.
pub(crate) struct OpVariant {
    pub(crate) sources: &'static [&'static str],
    pub(crate) entry: &'static str,
    pub(crate) constants: Vec<(&'static str, f64)>,
}

impl OpVariant {
    /// The composed module: the shared uniform, then the sources in order.
    pub(crate) fn wgsl(&self) -> String {
        let mut s = String::from(COMMON_WGSL);
        for src in self.sources {
            s.push('\n');
            s.push_str(src);
        }
        s
    }
}

/// Every op pipeline a model of shape `c` with a `max_context` KV cache uses, in the order
/// of [`Ops`]' fields.
pub(crate) fn op_variants(c: &Config, max_context: usize) -> Vec<OpVariant> {
    let heads = [
        ("HEAD_DIM", c.head_dim as f64),
        ("N_HEADS", c.n_heads as f64),
        ("N_KV_HEADS", c.n_kv_heads as f64),
    ];
    let with = |extra: &[(&'static str, f64)]| [&heads[..], extra].concat();
    let v = |sources, entry, constants| OpVariant {
        sources,
        entry,
        constants,
    };
    vec![
        v(
            &[REDUCE_WGSL, RMS_NORM_WGSL],
            "rms_norm",
            vec![("D", c.d_model as f64), ("EPS", c.rms_eps as f64)],
        ),
        v(
            &[ROPE_WGSL],
            "rope",
            with(&[
                ("ROPE_DIMS", c.rope_dims as f64),
                ("THETA", c.rope_theta as f64),
            ]),
        ),
        v(
            &[REDUCE_WGSL, ATTENTION_WGSL],
            "attention",
            with(&[("MAX_CTX", max_context as f64)]),
        ),
        v(
            &[ELEMENTWISE_WGSL],
            "swiglu",
            vec![("WIDTH", c.d_ff as f64)],
        ),
        v(
            &[ELEMENTWISE_WGSL],
            "add_into",
            vec![("WIDTH", c.d_model as f64)],
        ),
        v(
            &[REDUCE_WGSL, LOG_PROB_WGSL],
            "log_prob",
            vec![("VOCAB", c.vocab_size as f64)],
        ),
    ]
}

impl Ops {
    fn new(device: &wgpu::Device, c: &Config, max_context: usize) -> Result<Ops> {
        let limits = device.limits();
        for (name, memory, invocations) in OP_KERNELS {
            check_fits(&limits, name, memory, invocations)?;
        }
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let mut pipelines = op_variants(c, max_context).into_iter().map(|v| {
            let module = crate::gpu::shader_module(device, v.entry, v.wgsl(), false);
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(v.entry),
                layout: None,
                module: &module,
                entry_point: Some(v.entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &v.constants,
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            })
        });
        let mut next = || pipelines.next().expect("one variant per op");
        let ops = Ops {
            rms_norm: next(),
            rope: next(),
            attention: next(),
            swiglu: next(),
            add_into: next(),
            log_prob: next(),
        };
        if let Some(e) = crate::gpu::pop_scope(scope) {
            return Err(Error::Gpu(format!(
                "building the llama kernels failed: {e}"
            )));
        }
        Ok(ops)
    }
}

const COMMON_WGSL: &str = include_str!("../../shaders/llama/common.wgsl");
const REDUCE_WGSL: &str = include_str!("../../shaders/llama/reduce.wgsl");
const RMS_NORM_WGSL: &str = include_str!("../../shaders/llama/rms_norm.wgsl");
const ROPE_WGSL: &str = include_str!("../../shaders/llama/rope.wgsl");
const ATTENTION_WGSL: &str = include_str!("../../shaders/llama/attention.wgsl");
const ELEMENTWISE_WGSL: &str = include_str!("../../shaders/llama/elementwise.wgsl");
const LOG_PROB_WGSL: &str = include_str!("../../shaders/llama/log_prob.wgsl");

/// One launch of an op kernel.
struct OpLaunch {
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    groups: [u32; 3],
}

enum Step {
    Matmul(Dispatch),
    Op(OpLaunch),
}

impl Step {
    fn encode(&self, pass: &mut wgpu::ComputePass<'_>) {
        match self {
            Step::Matmul(d) => d.encode_in_pass(pass),
            Step::Op(op) => {
                pass.set_pipeline(&op.pipeline);
                pass.set_bind_group(0, &op.bind_group, &[]);
                pass.dispatch_workgroups(op.groups[0], op.groups[1], op.groups[2]);
            }
        }
    }
}

/// Everything one forward call of `n` tokens encodes, prepared once per (`n`, output) and
/// reused: buffers, bind groups, dispatches.
struct Plan {
    /// `Run { n, pos0 }`, written before each submit.
    run: wgpu::Buffer,
    ids: wgpu::Buffer,
    /// The next token after each position (log-probabilities only).
    targets: Option<wgpu::Buffer>,
    /// Embedding, blocks and final norm.
    body: Vec<Step>,
    /// For [`Output::LastLogits`]: (normed rows, last row) copied between the passes.
    last_row: Option<(wgpu::Buffer, wgpu::Buffer)>,
    /// Output projection (and log-probabilities).
    head: Vec<Step>,
    result: wgpu::Buffer,
    result_len: usize,
    readback: wgpu::Buffer,
}

/// A llama model on the GPU with its KV cache.
pub struct GpuModel {
    ctx: GpuContext,
    config: Config,
    options: GpuModelOptions,
    kernels: HashMap<Format, Kernels>,
    ops: Ops,
    token_embd: GpuWeight,
    output: Option<GpuWeight>,
    output_norm: wgpu::Buffer,
    layers: Vec<Layer>,
    plans: HashMap<(usize, Output), Plan>,
    pos: usize,
    gpu_bytes: u64,
}

impl GpuModel {
    /// Upload `weights` and build every kernel they need.
    pub fn new(ctx: &GpuContext, weights: &Weights, options: GpuModelOptions) -> Result<Self> {
        let c = weights.config.clone();
        if c.head_dim > MAX_HEAD_DIM {
            return Err(Error::Model(format!(
                "head dimension {} exceeds the attention kernel's {MAX_HEAD_DIM}",
                c.head_dim
            )));
        }
        if options.max_context == 0 || options.max_batch == 0 {
            return Err(Error::InvalidArgument(
                "the context and batch must hold at least one token".into(),
            ));
        }
        let limits = ctx.device.limits();
        let max_binding = limits.max_storage_buffer_binding_size;
        let cache_bytes = (options.max_context as u64)
            .checked_mul(c.kv_dim() as u64 * 4)
            .filter(|&b| b <= max_binding)
            .ok_or_else(|| {
                Error::DeviceLimit(format!(
                    "a KV cache of {} positions exceeds the {max_binding}-byte binding limit",
                    options.max_context
                ))
            })?;
        // The largest per-token buffers: all logits, and the attention scores.
        let per_token = (c.vocab_size.max(c.n_heads * options.max_context) as u64) * 4;
        let max_batch = options.max_batch.min((max_binding / per_token) as usize);
        if max_batch == 0 {
            return Err(Error::DeviceLimit(format!(
                "one token's logits or attention scores ({per_token} bytes) exceed the \
                 {max_binding}-byte binding limit; use a shorter context"
            )));
        }
        let options = GpuModelOptions {
            max_batch,
            ..options
        };
        let mut kernels = HashMap::new();
        let mut upload = |q: &crate::QuantizedTensor| -> Result<GpuWeight> {
            if let std::collections::hash_map::Entry::Vacant(e) = kernels.entry(q.format()) {
                e.insert(Kernels::new(&ctx.device, q.format())?);
            }
            GpuWeight::upload(ctx, q)
        };
        let token_embd = upload(&weights.token_embd)?;
        let output = weights.output.as_ref().map(&mut upload).transpose()?;
        let mut layers = Vec::with_capacity(c.n_layers);
        for (i, l) in weights.layers.iter().enumerate() {
            let cache = |what: &str| {
                ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(&format!("blk.{i} {what} cache")),
                    size: cache_bytes.max(4),
                    usage: wgpu::BufferUsages::STORAGE,
                    mapped_at_creation: false,
                })
            };
            layers.push(Layer {
                attn_norm: ctx.storage_buffer("attn_norm", &l.attn_norm),
                wq: upload(&l.wq)?,
                wk: upload(&l.wk)?,
                wv: upload(&l.wv)?,
                wo: upload(&l.wo)?,
                ffn_norm: ctx.storage_buffer("ffn_norm", &l.ffn_norm),
                w_gate: upload(&l.w_gate)?,
                w_up: upload(&l.w_up)?,
                w_down: upload(&l.w_down)?,
                k_cache: cache("key"),
                v_cache: cache("value"),
            });
        }
        let ops = Ops::new(&ctx.device, &c, options.max_context)?;
        let mut gpu_bytes = token_embd.gpu_bytes() + output.as_ref().map_or(0, |o| o.gpu_bytes());
        for l in &layers {
            for w in [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down] {
                gpu_bytes += w.gpu_bytes();
            }
            gpu_bytes += 2 * cache_bytes + 8 * c.d_model as u64;
        }
        Ok(GpuModel {
            ctx: ctx.clone(),
            config: c.clone(),
            options,
            kernels,
            ops,
            token_embd,
            output,
            output_norm: ctx.storage_buffer("output_norm", &weights.output_norm),
            layers,
            plans: HashMap::new(),
            pos: 0,
            gpu_bytes,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The options in force (`max_batch` possibly lowered to fit the device).
    pub fn options(&self) -> GpuModelOptions {
        self.options
    }

    /// Tokens in the KV cache.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Forget the context (the cache is overwritten from position 0).
    pub fn reset(&mut self) {
        self.pos = 0;
    }

    /// GPU memory held by weights (repacked) and the KV cache, in bytes.
    pub fn gpu_bytes(&self) -> u64 {
        self.gpu_bytes
    }

    /// Run `tokens` after the context so far and return the logits after the last one
    /// (`vocab` values) or after each ([`Output::AllLogits`], `n * vocab`).
    pub fn forward(&mut self, tokens: &[u32], output: Output) -> Result<Vec<f32>> {
        if output == Output::LogProbs {
            return Err(Error::InvalidArgument(
                "use log_probs for log-probabilities".into(),
            ));
        }
        self.check_tokens(tokens)?;
        let mut out = Vec::new();
        let batch = self.options.max_batch;
        let chunks = tokens.len().div_ceil(batch);
        for (i, chunk) in tokens.chunks(batch).enumerate() {
            let last = i + 1 == chunks;
            match output {
                // Earlier chunks only fill the cache; their logits are not needed.
                Output::LastLogits if !last => {
                    self.run(chunk, None, Output::LastLogits)?;
                }
                _ => out.extend(self.run(chunk, None, output)?),
            }
        }
        Ok(out)
    }

    /// Run `tokens` after the context so far; element `i` is `log p(tokens[i + 1])` given
    /// everything up to `tokens[i]`, for `i < n - 1` (`n - 1` values).
    pub fn log_probs(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        self.check_tokens(tokens)?;
        let mut out = Vec::with_capacity(tokens.len());
        let batch = self.options.max_batch;
        for (i, chunk) in tokens.chunks(batch).enumerate() {
            // A chunk's last position predicts the next chunk's first token.
            let end = ((i + 1) * batch + 1).min(tokens.len());
            let next = &tokens[i * batch + 1..end];
            let lp = self.run(chunk, Some(next), Output::LogProbs)?;
            out.extend_from_slice(&lp[..next.len()]);
        }
        Ok(out)
    }

    fn check_tokens(&self, tokens: &[u32]) -> Result<()> {
        if tokens.is_empty() {
            return Err(Error::InvalidArgument("no tokens to run".into()));
        }
        if let Some(&t) = tokens
            .iter()
            .find(|&&t| t as usize >= self.config.vocab_size)
        {
            return Err(Error::InvalidArgument(format!(
                "token id {t} is outside the vocabulary of {}",
                self.config.vocab_size
            )));
        }
        if self.pos + tokens.len() > self.options.max_context {
            return Err(Error::InvalidArgument(format!(
                "{} tokens after {} would exceed the context of {} (reset, or create the model \
                 with a longer max_context)",
                tokens.len(),
                self.pos,
                self.options.max_context
            )));
        }
        Ok(())
    }

    /// One submit: `tokens` (at most `max_batch`) at the current position.
    fn run(&mut self, tokens: &[u32], targets: Option<&[u32]>, output: Output) -> Result<Vec<f32>> {
        let n = tokens.len();
        if !self.plans.contains_key(&(n, output)) {
            let scope = self
                .ctx
                .device
                .push_error_scope(wgpu::ErrorFilter::Validation);
            let plan = self.plan(n, output);
            if let Some(e) = crate::gpu::pop_scope(scope) {
                return Err(Error::Gpu(format!(
                    "preparing the forward pass failed: {e}"
                )));
            }
            self.plans.insert((n, output), plan?);
        }
        let plan = &self.plans[&(n, output)];
        let q = &self.ctx.queue;
        q.write_buffer(
            &plan.run,
            0,
            bytemuck::cast_slice(&[n as u32, self.pos as u32, 0, 0]),
        );
        q.write_buffer(&plan.ids, 0, bytemuck::cast_slice(tokens));
        if let (Some(buf), Some(t)) = (&plan.targets, targets) {
            let mut padded = t.to_vec();
            padded.resize(n, u32::MAX);
            q.write_buffer(buf, 0, bytemuck::cast_slice(&padded));
        }
        let d = self.config.d_model as u64;
        self.ctx.submit_checked(|enc| {
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                for s in &plan.body {
                    s.encode(&mut pass);
                }
            }
            if let Some((normed, last)) = &plan.last_row {
                enc.copy_buffer_to_buffer(normed, (n as u64 - 1) * d * 4, last, 0, d * 4);
            }
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                for s in &plan.head {
                    s.encode(&mut pass);
                }
            }
            enc.copy_buffer_to_buffer(
                &plan.result,
                0,
                &plan.readback,
                0,
                plan.result_len as u64 * 4,
            );
        })?;
        let bytes = self.ctx.read_mapped(&plan.readback, plan.result_len * 4)?;
        let out = bytemuck::pod_collect_to_vec(&bytes);
        self.pos += n;
        Ok(out)
    }

    fn plan(&self, n: usize, output: Output) -> Result<Plan> {
        let c = &self.config;
        let dev = &self.ctx.device;
        let limits = dev.limits();
        let (d, kv, ff, vocab) = (c.d_model, c.kv_dim(), c.d_ff, c.vocab_size);
        let buf = |label: &str, len: usize| self.ctx.output_buffer(label, len);
        let run = dev.create_buffer(&wgpu::BufferDescriptor {
            label: Some("llama run"),
            size: 16,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        // `n` token ids, written before each submit.
        let id_buffer = |label: &str| {
            dev.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: (n * 4) as u64,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        };
        let ids = id_buffer("llama token ids");
        let x = buf("residual", n * d);
        let xn = buf("normed", n * d);
        let q = buf("queries", n * d);
        let k = buf("keys", n * kv);
        let v = buf("values", n * kv);
        let att = buf("attention", n * d);
        let o = buf("block output", n * d);
        let gate = buf("gate", n * ff);
        let up = buf("up", n * ff);
        let h = buf("swiglu", n * ff);
        let scores = buf("scores", n * c.n_heads * self.options.max_context);

        // Binding 0 is the run uniform; `bindings` go to 1, 2, ... in order, `None` skipping a
        // binding the entry point does not use.
        let op = |pipeline: &wgpu::ComputePipeline,
                  bindings: &[Option<&wgpu::Buffer>],
                  groups: [u32; 3]| {
            let layout = pipeline.get_bind_group_layout(0);
            let mut entries = vec![wgpu::BindGroupEntry {
                binding: 0,
                resource: run.as_entire_binding(),
            }];
            for (i, b) in bindings.iter().enumerate() {
                if let Some(b) = b {
                    entries.push(wgpu::BindGroupEntry {
                        binding: i as u32 + 1,
                        resource: b.as_entire_binding(),
                    });
                }
            }
            Step::Op(OpLaunch {
                pipeline: pipeline.clone(),
                bind_group: dev.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("llama op"),
                    layout: &layout,
                    entries: &entries,
                }),
                groups,
            })
        };
        let rows = [n as u32, 1, 1];
        let elems = |count: usize| grid_1d(count.div_ceil(OP_WG), &limits);
        let matmul = |w: &GpuWeight, x: &wgpu::Buffer, y: &wgpu::Buffer, n: usize| {
            Ok::<_, Error>(Step::Matmul(self.kernels[&w.format()].matmul(w, x, y, n)?))
        };

        let mut body = vec![Step::Matmul(
            self.kernels[&self.token_embd.format()].gather_rows(&self.token_embd, &ids, &x, n)?,
        )];
        let ops = &self.ops;
        for l in &self.layers {
            body.push(op(
                &ops.rms_norm,
                &[Some(&x), Some(&l.attn_norm), Some(&xn)],
                rows,
            ));
            body.push(matmul(&l.wq, &xn, &q, n)?);
            body.push(matmul(&l.wk, &xn, &k, n)?);
            body.push(matmul(&l.wv, &xn, &v, n)?);
            body.push(op(
                &ops.rope,
                &[
                    Some(&q),
                    Some(&k),
                    Some(&v),
                    Some(&l.k_cache),
                    Some(&l.v_cache),
                ],
                elems(n * (c.n_heads + c.n_kv_heads) * c.head_dim / 2)?,
            ));
            body.push(op(
                &ops.attention,
                &[
                    Some(&q),
                    Some(&l.k_cache),
                    Some(&l.v_cache),
                    Some(&att),
                    Some(&scores),
                ],
                [c.n_heads as u32, n as u32, 1],
            ));
            body.push(matmul(&l.wo, &att, &o, n)?);
            body.push(op(
                &ops.add_into,
                &[Some(&o), None, Some(&x)],
                elems(n * d)?,
            ));
            body.push(op(
                &ops.rms_norm,
                &[Some(&x), Some(&l.ffn_norm), Some(&xn)],
                rows,
            ));
            body.push(matmul(&l.w_gate, &xn, &gate, n)?);
            body.push(matmul(&l.w_up, &xn, &up, n)?);
            body.push(op(
                &ops.swiglu,
                &[Some(&gate), Some(&up), Some(&h)],
                elems(n * ff)?,
            ));
            body.push(matmul(&l.w_down, &h, &o, n)?);
            body.push(op(
                &ops.add_into,
                &[Some(&o), None, Some(&x)],
                elems(n * d)?,
            ));
        }
        body.push(op(
            &ops.rms_norm,
            &[Some(&x), Some(&self.output_norm), Some(&xn)],
            rows,
        ));

        let out_w = self.output.as_ref().unwrap_or(&self.token_embd);
        let mut head = Vec::new();
        let mut last_row = None;
        let mut targets = None;
        let (result, result_len) = match output {
            Output::LastLogits => {
                let last = buf("last normed row", d);
                let logits = buf("logits", vocab);
                head.push(matmul(out_w, &last, &logits, 1)?);
                last_row = Some((xn.clone(), last));
                (logits, vocab)
            }
            Output::AllLogits => {
                let logits = buf("logits", n * vocab);
                head.push(matmul(out_w, &xn, &logits, n)?);
                (logits, n * vocab)
            }
            Output::LogProbs => {
                let logits = buf("logits", n * vocab);
                head.push(matmul(out_w, &xn, &logits, n)?);
                let t = id_buffer("llama next tokens");
                let lp = buf("log probs", n);
                head.push(op(
                    &ops.log_prob,
                    &[Some(&logits), Some(&t), Some(&lp)],
                    rows,
                ));
                targets = Some(t);
                (lp, n)
            }
        };
        let readback = dev.create_buffer(&wgpu::BufferDescriptor {
            label: Some("llama readback"),
            size: (result_len * 4) as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Ok(Plan {
            run,
            ids,
            targets,
            body,
            last_row,
            head,
            result,
            result_len,
            readback,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(d_model: usize, n_heads: usize, n_kv_heads: usize) -> Config {
        Config {
            n_layers: 1,
            d_model,
            d_ff: 3 * d_model,
            n_heads,
            n_kv_heads,
            head_dim: d_model / n_heads,
            rope_dims: d_model / n_heads,
            rope_theta: 10000.0,
            rms_eps: 1e-5,
            context_length: 64,
            vocab_size: 1000,
        }
    }

    #[test]
    fn every_op_variant_validates_with_naga() {
        // SmolLM2-135M's shape and a small one with a different grouping.
        for (c, ctx) in [(config(576, 9, 3), 2048), (config(64, 4, 1), 16)] {
            let variants = op_variants(&c, ctx);
            assert_eq!(variants.len(), 6);
            for v in variants {
                crate::gpu::shaders::validate_src(&v.wgsl(), v.entry, &v.constants);
            }
        }
    }

    #[test]
    fn op_workgroup_memory_matches_the_wgsl() {
        for (name, bytes, _) in OP_KERNELS {
            let v = op_variants(&config(64, 4, 1), 16)
                .into_iter()
                .find(|v| v.entry == name)
                .unwrap();
            let module = naga::front::wgsl::parse_str(&v.wgsl()).unwrap();
            let declared: u32 = module
                .global_variables
                .iter()
                .filter(|(_, g)| g.space == naga::AddressSpace::WorkGroup)
                .map(|(_, g)| module.types[g.ty].inner.size(module.to_ctx()))
                .sum();
            assert_eq!(declared, bytes, "{name}");
        }
    }
}
