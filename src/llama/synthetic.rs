//! Small random llama models written as GGUF, for tests, examples and trying the commands
//! without a download: real structure (GQA, tied or separate output, any weight format,
//! a byte-level BPE vocabulary with control tokens), random weights.

use super::config::Config;
use crate::io::gguf::{MetaType, MetaValue, StoredTensor};
use crate::rng::Rng;
use crate::{Format, QuantizedTensor, Result};

pub use crate::io::gguf::GgufContents;

/// The shape and storage of a synthetic model.
#[derive(Clone, Debug)]
pub struct TinyLlama {
    pub n_layers: usize,
    pub d_model: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub d_ff: usize,
    /// At least 259: 256 byte tokens, three control tokens, then merged tokens.
    pub vocab: usize,
    /// Format of every matrix except the token embedding.
    pub format: Format,
    pub embedding_format: Format,
    /// Share the token embedding as the output projection (no `output.weight`).
    pub tied: bool,
    pub seed: u64,
}

impl Default for TinyLlama {
    fn default() -> Self {
        TinyLlama {
            n_layers: 2,
            d_model: 64,
            n_heads: 4,
            n_kv_heads: 2,
            d_ff: 96,
            vocab: 300,
            format: Format::Q4_1,
            embedding_format: Format::Q8_0,
            tied: true,
            seed: 1,
        }
    }
}

/// Control tokens after the 256 byte tokens.
pub const CONTROL_TOKENS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

/// GPT-2's reversible map of bytes to printable characters (byte-level BPE vocabularies
/// store tokens in it).
pub fn byte_to_char(b: u8) -> char {
    let printable = |b: u8| (b'!'..=b'~').contains(&b) || (0xa1..=0xac).contains(&b) || b >= 0xae;
    if printable(b) {
        return char::from(b);
    }
    let rank = (0..b).filter(|&x| !printable(x)).count() as u32;
    char::from_u32(256 + rank).expect("below 0x144")
}

impl TinyLlama {
    pub fn config(&self) -> Config {
        Config {
            n_layers: self.n_layers,
            d_model: self.d_model,
            d_ff: self.d_ff,
            n_heads: self.n_heads,
            n_kv_heads: self.n_kv_heads,
            head_dim: self.d_model / self.n_heads,
            rope_dims: self.d_model / self.n_heads,
            rope_theta: 10000.0,
            rms_eps: 1e-5,
            context_length: 256,
            vocab_size: self.vocab,
        }
    }

    /// Metadata (llama hyperparameters, tokenizer) and tensors, ready for
    /// [`crate::io::gguf::write_model`].
    pub fn build(&self) -> Result<GgufContents> {
        let c = self.config();
        let mut rng = Rng::new(self.seed);
        let mut matrix = |rows: usize, k: usize, format: Format| {
            let scale = 1.0 / (k as f32).sqrt();
            let w: Vec<f32> = rng.normal_vec(rows * k).iter().map(|v| v * scale).collect();
            QuantizedTensor::quantize(format, &w, rows, k).map(StoredTensor::Quantized)
        };
        let (d, kv, ff) = (c.d_model, c.kv_dim(), c.d_ff);
        let mut t = vec![(
            "token_embd.weight".to_string(),
            matrix(self.vocab, d, self.embedding_format)?,
        )];
        let f = self.format;
        for l in 0..c.n_layers {
            for (role, rows, k) in [
                ("attn_q", d, d),
                ("attn_k", kv, d),
                ("attn_v", kv, d),
                ("attn_output", d, d),
                ("ffn_gate", ff, d),
                ("ffn_up", ff, d),
                ("ffn_down", d, ff),
            ] {
                t.push((format!("blk.{l}.{role}.weight"), matrix(rows, k, f)?));
            }
        }
        if !self.tied {
            t.push(("output.weight".into(), matrix(self.vocab, d, f)?));
        }
        let mut rng = Rng::new(self.seed ^ 0x5eed);
        let mut norm = || StoredTensor::Float {
            shape: vec![d],
            data: rng.normal_vec(d).iter().map(|v| 1.0 + 0.2 * v).collect(),
        };
        for l in 0..c.n_layers {
            t.push((format!("blk.{l}.attn_norm.weight"), norm()));
            t.push((format!("blk.{l}.ffn_norm.weight"), norm()));
        }
        t.push(("output_norm.weight".into(), norm()));
        let mut meta = c.to_metadata();
        meta.extend(self.tokenizer_metadata());
        Ok((meta, t))
    }

    /// Write the model as a GGUF file.
    pub fn write(&self, path: impl AsRef<std::path::Path>) -> Result<()> {
        let (meta, tensors) = self.build()?;
        crate::io::gguf::write_model(path, &meta, &tensors)
    }

    /// A byte-level BPE vocabulary of `vocab` tokens in llama.cpp's `gpt2` layout.
    fn tokenizer_metadata(&self) -> Vec<(String, MetaValue)> {
        let mut tokens: Vec<String> = (0..=255u8).map(|b| byte_to_char(b).to_string()).collect();
        let mut types = vec![1i32; 256];
        for s in CONTROL_TOKENS {
            tokens.push(s.to_string());
            types.push(3);
        }
        // Merges of frequent letters (and a leading space), in rank order.
        let letters: Vec<String> = " etaoinshr"
            .bytes()
            .map(|b| byte_to_char(b).to_string())
            .collect();
        let mut merges = Vec::new();
        'outer: for a in &letters {
            for b in &letters[1..] {
                if tokens.len() >= self.vocab {
                    break 'outer;
                }
                merges.push(format!("{a} {b}"));
                tokens.push(format!("{a}{b}"));
                types.push(1);
            }
        }
        while tokens.len() < self.vocab {
            tokens.push(format!("<unused{}>", tokens.len()));
            types.push(5);
        }
        let s = |v: &str| MetaValue::String(v.into());
        vec![
            ("tokenizer.ggml.model".into(), s("gpt2")),
            ("tokenizer.ggml.pre".into(), s("smollm")),
            (
                "tokenizer.ggml.tokens".into(),
                MetaValue::string_array(tokens),
            ),
            (
                "tokenizer.ggml.token_type".into(),
                MetaValue::Array(
                    MetaType::I32,
                    types.into_iter().map(MetaValue::I32).collect(),
                ),
            ),
            (
                "tokenizer.ggml.merges".into(),
                MetaValue::string_array(merges),
            ),
            ("tokenizer.ggml.bos_token_id".into(), MetaValue::U32(256)),
            ("tokenizer.ggml.eos_token_id".into(), MetaValue::U32(256)),
            (
                "tokenizer.ggml.add_bos_token".into(),
                MetaValue::Bool(false),
            ),
            (
                "tokenizer.chat_template".into(),
                s(
                    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + \
                   message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}",
                ),
            ),
        ]
    }
}
