//! The tensors of a llama model, by role, as read from a GGUF file.

use super::config::Config;
use crate::io::gguf::{self, MetaValue, StoredTensor};
use crate::{Error, Format, QuantizedTensor, Result};
use std::path::Path;

/// One transformer block's tensors (matrices are `[out, in]` in numpy order).
#[derive(Clone, Debug)]
pub struct LayerWeights {
    pub attn_norm: Vec<f32>,
    pub wq: QuantizedTensor,
    pub wk: QuantizedTensor,
    pub wv: QuantizedTensor,
    pub wo: QuantizedTensor,
    pub ffn_norm: Vec<f32>,
    pub w_gate: QuantizedTensor,
    pub w_up: QuantizedTensor,
    pub w_down: QuantizedTensor,
}

/// A whole model: hyperparameters, every tensor, and the file's metadata (for the tokenizer).
#[derive(Clone, Debug)]
pub struct Weights {
    pub config: Config,
    /// `[vocab, d_model]`.
    pub token_embd: QuantizedTensor,
    pub layers: Vec<LayerWeights>,
    pub output_norm: Vec<f32>,
    /// `[vocab, d_model]`; `None` when the output projection is tied to `token_embd`.
    pub output: Option<QuantizedTensor>,
    pub metadata: Vec<(String, MetaValue)>,
}

impl Weights {
    /// Read a llama GGUF file (see [`gguf::read_model`]: every format wgquant supports).
    pub fn open(path: impl AsRef<Path>) -> Result<Weights> {
        let path = path.as_ref();
        let model = gguf::read_model(path)?;
        Weights::from_gguf(model).map_err(|e| match e {
            Error::Model(m) => Error::Model(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Assign the tensors of a GGUF model to their roles and check every shape against the
    /// metadata.
    pub fn from_gguf(model: gguf::Model) -> Result<Weights> {
        let metadata = model.metadata_entries().to_vec();
        let mut tensors: std::collections::HashMap<String, StoredTensor> =
            model.into_tensors().into_iter().collect();
        let mut take = |name: &str| {
            tensors
                .remove(name)
                .ok_or_else(|| Error::Model(format!("tensor '{name}' is missing")))
        };
        let token_embd = take("token_embd.weight")?;
        let vocab = token_embd.shape().first().copied().unwrap_or(0);
        let config = Config::from_metadata(&metadata, vocab)?;
        let (d, kv, ff) = (config.d_model, config.kv_dim(), config.d_ff);
        let token_embd = matrix("token_embd.weight", token_embd, vocab, d)?;
        let output_norm = vector("output_norm.weight", take("output_norm.weight")?, d)?;
        let output = match tensors.remove("output.weight") {
            Some(t) => Some(matrix("output.weight", t, vocab, d)?),
            None => None,
        };
        let mut layers = Vec::with_capacity(config.n_layers);
        for l in 0..config.n_layers {
            let mut get = |role: &str| {
                let name = format!("blk.{l}.{role}.weight");
                let t = tensors
                    .remove(&name)
                    .ok_or_else(|| Error::Model(format!("tensor '{name}' is missing")))?;
                Ok::<_, Error>((name, t))
            };
            let mut mat = |role: &str, rows: usize, k: usize| {
                let (name, t) = get(role)?;
                matrix(&name, t, rows, k)
            };
            let wq = mat("attn_q", d, d)?;
            let wk = mat("attn_k", kv, d)?;
            let wv = mat("attn_v", kv, d)?;
            let wo = mat("attn_output", d, d)?;
            let w_gate = mat("ffn_gate", ff, d)?;
            let w_up = mat("ffn_up", ff, d)?;
            let w_down = mat("ffn_down", d, ff)?;
            let (n, t) = get("attn_norm")?;
            let attn_norm = vector(&n, t, d)?;
            let (n, t) = get("ffn_norm")?;
            let ffn_norm = vector(&n, t, d)?;
            layers.push(LayerWeights {
                attn_norm,
                wq,
                wk,
                wv,
                wo,
                ffn_norm,
                w_gate,
                w_up,
                w_down,
            });
        }
        // Biases or other extra tensors would change the forward pass: refuse rather than
        // silently ignore them. (RoPE frequency tables are the one known harmless extra.)
        let mut extra: Vec<&String> = tensors
            .keys()
            .filter(|n| !n.starts_with("rope_freqs"))
            .collect();
        extra.sort();
        if let Some(name) = extra.first() {
            return Err(Error::Model(format!(
                "tensor '{name}' is not part of the llama forward pass this module runs{}",
                if extra.len() > 1 {
                    format!(" ({} more)", extra.len() - 1)
                } else {
                    String::new()
                }
            )));
        }
        Ok(Weights {
            config,
            token_embd,
            layers,
            output_norm,
            output,
            metadata,
        })
    }

    /// The output projection (`output.weight`, or the token embedding when tied).
    pub fn output_matrix(&self) -> &QuantizedTensor {
        self.output.as_ref().unwrap_or(&self.token_embd)
    }

    /// Bytes of weight data (as stored, before GPU repacking).
    pub fn weight_bytes(&self) -> usize {
        let mut n = self.token_embd.bytes().len() + 4 * self.output_norm.len();
        n += self.output.as_ref().map_or(0, |o| o.bytes().len());
        for l in &self.layers {
            n += 4 * (l.attn_norm.len() + l.ffn_norm.len());
            for m in [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down] {
                n += m.bytes().len();
            }
        }
        n
    }

    /// Every matrix's format with how many matrices use it, e.g. `q4_1 x210, q8_0 x1`.
    pub fn format_summary(&self) -> String {
        let mut counts: Vec<(Format, usize)> = Vec::new();
        let mut add = |f: Format| match counts.iter_mut().find(|(g, _)| *g == f) {
            Some((_, c)) => *c += 1,
            None => counts.push((f, 1)),
        };
        add(self.token_embd.format());
        if let Some(o) = &self.output {
            add(o.format());
        }
        for l in &self.layers {
            for m in [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down] {
                add(m.format());
            }
        }
        counts.sort_by_key(|c| std::cmp::Reverse(c.1));
        counts
            .iter()
            .map(|(f, c)| format!("{f} x{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A `[rows, k]` matrix; float matrices become [`Format::F32`] tensors so every matmul runs
/// through the same kernels.
fn matrix(name: &str, t: StoredTensor, rows: usize, k: usize) -> Result<QuantizedTensor> {
    let shape = t.shape();
    if shape != [rows, k] {
        return Err(Error::Model(format!(
            "tensor '{name}' has shape {shape:?}; the metadata implies [{rows}, {k}]"
        )));
    }
    match t {
        StoredTensor::Quantized(q) => Ok(q),
        StoredTensor::Float { data, .. } => QuantizedTensor::quantize(Format::F32, &data, rows, k),
    }
}

/// A length-`len` f32 vector (a norm's weights).
fn vector(name: &str, t: StoredTensor, len: usize) -> Result<Vec<f32>> {
    match t {
        StoredTensor::Float { shape, data } if shape == [len] => Ok(data),
        other => Err(Error::Model(format!(
            "tensor '{name}' should be {len} floats; it has shape {:?}",
            other.shape()
        ))),
    }
}
