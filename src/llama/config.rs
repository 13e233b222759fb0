//! Hyperparameters of a llama-architecture model, read from GGUF metadata.

use crate::io::gguf::MetaValue;
use crate::{Error, Result};

/// The shape of a llama model (names follow llama.cpp's GGUF keys).
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Transformer blocks (`llama.block_count`).
    pub n_layers: usize,
    /// Width of the residual stream (`llama.embedding_length`).
    pub d_model: usize,
    /// Hidden width of the SwiGLU feed-forward (`llama.feed_forward_length`).
    pub d_ff: usize,
    /// Query heads (`llama.attention.head_count`).
    pub n_heads: usize,
    /// Key/value heads, shared by `n_heads / n_kv_heads` query heads each
    /// (`llama.attention.head_count_kv`, default `n_heads`).
    pub n_kv_heads: usize,
    /// `d_model / n_heads`.
    pub head_dim: usize,
    /// Leading dimensions of each head that RoPE rotates (`llama.rope.dimension_count`).
    pub rope_dims: usize,
    /// RoPE base frequency (`llama.rope.freq_base`, default 10000).
    pub rope_theta: f32,
    /// RMSNorm epsilon (`llama.attention.layer_norm_rms_epsilon`).
    pub rms_eps: f32,
    /// Longest context the model was trained for (`llama.context_length`).
    pub context_length: usize,
    /// Rows of the token embedding.
    pub vocab_size: usize,
}

/// A metadata lookup over GGUF entries.
struct Meta<'a> {
    entries: &'a [(String, MetaValue)],
    arch: &'a str,
}

impl<'a> Meta<'a> {
    fn get(&self, key: &str) -> Option<&'a MetaValue> {
        let full = format!("{}.{key}", self.arch);
        self.entries
            .iter()
            .find(|(k, _)| *k == full)
            .map(|(_, v)| v)
    }

    fn usize(&self, key: &str) -> Result<Option<usize>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|u| usize::try_from(u).ok())
                .map(Some)
                .ok_or_else(|| {
                    Error::Model(format!(
                        "metadata {}.{key} is not an unsigned integer",
                        self.arch
                    ))
                }),
        }
    }

    fn required(&self, key: &str) -> Result<usize> {
        self.usize(key)?
            .ok_or_else(|| Error::Model(format!("metadata {}.{key} is missing", self.arch)))
    }

    fn f32(&self, key: &str) -> Result<Option<f32>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .filter(|x| x.is_finite())
                .map(|x| Some(x as f32))
                .ok_or_else(|| {
                    Error::Model(format!(
                        "metadata {}.{key} is not a finite number",
                        self.arch
                    ))
                }),
        }
    }
}

/// Every architecture whose forward pass is the llama one (RMSNorm, RoPE on adjacent pairs,
/// grouped-query attention, SwiGLU).
const LLAMA_ARCHS: [&str; 1] = ["llama"];

/// Largest dimension accepted from a file; far above any real model, it keeps products of
/// dimensions well inside `usize` and `u32` shader indices.
const MAX_DIM: usize = 1 << 20;

impl Config {
    /// Read the hyperparameters; `vocab_size` is the token embedding's row count.
    pub fn from_metadata(entries: &[(String, MetaValue)], vocab_size: usize) -> Result<Config> {
        let arch = entries
            .iter()
            .find(|(k, _)| k == "general.architecture")
            .and_then(|(_, v)| v.as_str())
            .ok_or_else(|| Error::Model("metadata general.architecture is missing".into()))?;
        if !LLAMA_ARCHS.contains(&arch) {
            return Err(Error::Model(format!(
                "architecture '{arch}' is not supported (supported: {})",
                LLAMA_ARCHS.join(", ")
            )));
        }
        let m = Meta { entries, arch };
        if let Some(kind) = m.get("rope.scaling.type").and_then(|v| v.as_str()) {
            if kind != "none" {
                return Err(Error::Model(format!(
                    "RoPE scaling '{kind}' is not supported"
                )));
            }
        }
        let n_layers = m.required("block_count")?;
        let d_model = m.required("embedding_length")?;
        let d_ff = m.required("feed_forward_length")?;
        let n_heads = m.required("attention.head_count")?;
        let n_kv_heads = m.usize("attention.head_count_kv")?.unwrap_or(n_heads);
        let rms_eps = m.f32("attention.layer_norm_rms_epsilon")?.ok_or_else(|| {
            Error::Model(format!(
                "metadata {arch}.attention.layer_norm_rms_epsilon is missing"
            ))
        })?;
        let rope_theta = m.f32("rope.freq_base")?.unwrap_or(10000.0);
        let context_length = m.usize("context_length")?.unwrap_or(2048);
        for (name, v) in [
            ("block_count", n_layers),
            ("embedding_length", d_model),
            ("feed_forward_length", d_ff),
            ("attention.head_count", n_heads),
            ("attention.head_count_kv", n_kv_heads),
            ("vocab size", vocab_size),
        ] {
            if v == 0 || v > MAX_DIM {
                return Err(Error::Model(format!(
                    "{name} = {v} is outside 1..={MAX_DIM}"
                )));
            }
        }
        if d_model % n_heads != 0 || n_heads % n_kv_heads != 0 {
            return Err(Error::Model(format!(
                "{n_heads} query heads and {n_kv_heads} key/value heads do not divide a \
                 width of {d_model} into equal groups"
            )));
        }
        let head_dim = d_model / n_heads;
        let rope_dims = m.usize("rope.dimension_count")?.unwrap_or(head_dim);
        if head_dim % 2 != 0 || rope_dims % 2 != 0 || rope_dims > head_dim {
            return Err(Error::Model(format!(
                "RoPE over {rope_dims} of {head_dim} head dimensions: both must be even and \
                 the first no larger"
            )));
        }
        if rms_eps <= 0.0 || rope_theta <= 0.0 {
            return Err(Error::Model(
                "RMSNorm epsilon and RoPE base must be positive".into(),
            ));
        }
        Ok(Config {
            n_layers,
            d_model,
            d_ff,
            n_heads,
            n_kv_heads,
            head_dim,
            rope_dims,
            rope_theta,
            rms_eps,
            context_length,
            vocab_size,
        })
    }

    /// Width of the key and value projections.
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }

    /// The metadata entries describing this config (for writing a model file).
    pub fn to_metadata(&self) -> Vec<(String, MetaValue)> {
        let u = |k: &str, v: usize| (format!("llama.{k}"), MetaValue::U32(v as u32));
        vec![
            (
                "general.architecture".into(),
                MetaValue::String("llama".into()),
            ),
            u("block_count", self.n_layers),
            u("context_length", self.context_length),
            u("embedding_length", self.d_model),
            u("feed_forward_length", self.d_ff),
            u("attention.head_count", self.n_heads),
            u("attention.head_count_kv", self.n_kv_heads),
            u("rope.dimension_count", self.rope_dims),
            (
                "llama.rope.freq_base".into(),
                MetaValue::F32(self.rope_theta),
            ),
            (
                "llama.attention.layer_norm_rms_epsilon".into(),
                MetaValue::F32(self.rms_eps),
            ),
        ]
    }
}
