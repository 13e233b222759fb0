//! Importance matrices: for each weight, the sum of squares of every input column over the
//! calibration tokens, stored in llama.cpp's GGUF imatrix layout so that the files of both
//! tools read in either.
//!
//! # File layout (llama.cpp's `llama-imatrix` GGUF output)
//! - metadata `general.type = "imatrix"`, `imatrix.datasets` (array of strings: where the
//!   data came from), `imatrix.chunk_count` (u32: sequences run), `imatrix.chunk_size`
//!   (u32: tokens per sequence);
//! - per weight `W` (its GGUF name, e.g. `blk.0.attn_q.weight`): an F32 tensor
//!   `W.in_sum2` of ggml shape `[K, 1]` (numpy `[1, K]`), the sums of `x_j^2`, and an F32
//!   tensor `W.counts` of shape `[1, 1]`, the number of tokens summed (so `in_sum2 / counts`
//!   is the mean squared activation of each input column). Mixture-of-experts weights have
//!   one row per expert; wgquant reads and writes dense weights only (one row).

use crate::error::{Error, Result};
use crate::io::gguf::{self, MetaType, MetaValue, StoredTensor};
use std::collections::BTreeMap;
use std::path::Path;

const SUMS: &str = ".in_sum2";
const COUNTS: &str = ".counts";

/// One weight's entry: sums of squares per input column and the tokens summed.
#[derive(Clone, Debug, PartialEq)]
pub struct ImatrixEntry {
    pub sum_sq: Vec<f64>,
    pub count: u64,
}

impl ImatrixEntry {
    /// Mean squared activation per input column (the importance the quantizers weight by).
    pub fn importance(&self) -> Vec<f32> {
        let n = self.count.max(1) as f64;
        self.sum_sq.iter().map(|&s| (s / n) as f32).collect()
    }
}

/// Importance of the input columns of a model's weights, by tensor name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Imatrix {
    entries: BTreeMap<String, ImatrixEntry>,
    /// Where the data came from (file names), as `imatrix.datasets`.
    pub datasets: Vec<String>,
    /// Sequences the data was collected on.
    pub chunk_count: u32,
    /// Tokens per sequence.
    pub chunk_size: u32,
}

impl Imatrix {
    pub fn new() -> Imatrix {
        Imatrix::default()
    }

    /// Add the rows `x` (`n` x `k`) that weight `name` reads.
    pub fn add(&mut self, name: &str, x: &[f32], k: usize) {
        let e = self
            .entries
            .entry(name.to_string())
            .or_insert_with(|| ImatrixEntry {
                sum_sq: vec![0.0; k],
                count: 0,
            });
        assert_eq!(e.sum_sq.len(), k, "{name}: inputs of another width");
        for row in x.chunks_exact(k) {
            for (s, &v) in e.sum_sq.iter_mut().zip(row) {
                *s += v as f64 * v as f64;
            }
            e.count += 1;
        }
    }

    pub fn get(&self, name: &str) -> Option<&ImatrixEntry> {
        self.entries.get(name)
    }

    /// The importance of weight `name`'s inputs, checked against its row length `k`.
    pub fn importance(&self, name: &str, k: usize) -> Result<Option<Vec<f32>>> {
        match self.entries.get(name) {
            None => Ok(None),
            Some(e) if e.sum_sq.len() != k => Err(Error::Calibration(format!(
                "the importance matrix has {} columns for '{name}', whose rows have length {k}",
                e.sum_sq.len()
            ))),
            Some(e) => Ok(Some(e.importance())),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// Weight names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(|s| s.as_str())
    }

    /// The GGUF contents (metadata and tensors) in llama.cpp's layout.
    pub fn to_gguf(&self) -> gguf::GgufContents {
        let meta = vec![
            (
                "general.type".to_string(),
                MetaValue::String("imatrix".into()),
            ),
            (
                "imatrix.datasets".to_string(),
                MetaValue::Array(
                    MetaType::String,
                    self.datasets
                        .iter()
                        .map(|d| MetaValue::String(d.clone()))
                        .collect(),
                ),
            ),
            (
                "imatrix.chunk_count".to_string(),
                MetaValue::U32(self.chunk_count),
            ),
            (
                "imatrix.chunk_size".to_string(),
                MetaValue::U32(self.chunk_size),
            ),
        ];
        let mut tensors = Vec::with_capacity(2 * self.entries.len());
        for (name, e) in &self.entries {
            tensors.push((
                format!("{name}{SUMS}"),
                StoredTensor::Float {
                    shape: vec![1, e.sum_sq.len()],
                    data: e.sum_sq.iter().map(|&v| v as f32).collect(),
                },
            ));
            tensors.push((
                format!("{name}{COUNTS}"),
                StoredTensor::Float {
                    shape: vec![1, 1],
                    data: vec![e.count as f32],
                },
            ));
        }
        (meta, tensors)
    }

    /// Write the GGUF file.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        let (meta, tensors) = self.to_gguf();
        gguf::write_model(path, &meta, &tensors)
    }

    /// Read an imatrix GGUF file (llama.cpp's or wgquant's).
    pub fn read(path: impl AsRef<Path>) -> Result<Imatrix> {
        let path = path.as_ref();
        let model = gguf::read_model(path)?;
        Imatrix::from_gguf(model).map_err(|e| match e {
            Error::Calibration(m) => Error::Calibration(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// The entries of a parsed imatrix GGUF file.
    pub fn from_gguf(model: gguf::Model) -> Result<Imatrix> {
        let bad = |m: String| Error::Calibration(format!("not an importance matrix: {m}"));
        match model.metadata("general.type").and_then(|v| v.as_str()) {
            Some("imatrix") => {}
            other => {
                return Err(bad(format!(
                    "general.type is {}, not \"imatrix\"",
                    other.map_or("missing".to_string(), |t| format!("\"{t}\""))
                )))
            }
        }
        let u32_of = |key: &str| {
            model
                .metadata(key)
                .and_then(|v| v.as_u64())
                .map_or(0, |v| v.min(u32::MAX as u64) as u32)
        };
        let datasets = match model.metadata("imatrix.datasets") {
            Some(MetaValue::Array(_, items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        let (chunk_count, chunk_size) =
            (u32_of("imatrix.chunk_count"), u32_of("imatrix.chunk_size"));
        let mut sums = BTreeMap::new();
        let mut counts = BTreeMap::new();
        for (name, t) in model.into_tensors() {
            let StoredTensor::Float { shape, data } = t else {
                return Err(bad(format!("tensor '{name}' is not F32")));
            };
            if let Some(base) = name.strip_suffix(SUMS) {
                let rows = if shape.len() == 2 { shape[0] } else { 1 };
                if rows != 1 || data.is_empty() {
                    return Err(bad(format!(
                        "'{name}' has shape {shape:?}; wgquant reads dense weights \
                         (one row of sums), not mixture-of-experts ones"
                    )));
                }
                sums.insert(base.to_string(), data);
            } else if let Some(base) = name.strip_suffix(COUNTS) {
                if data.len() != 1 {
                    return Err(bad(format!("'{name}' has {} counts, not 1", data.len())));
                }
                counts.insert(base.to_string(), data[0]);
            } else {
                return Err(bad(format!(
                    "tensor '{name}' is neither <weight>{SUMS} nor <weight>{COUNTS}"
                )));
            }
        }
        let mut entries = BTreeMap::new();
        for (name, s) in sums {
            let c = counts
                .remove(&name)
                .ok_or_else(|| bad(format!("'{name}{SUMS}' has no '{name}{COUNTS}'")))?;
            if !(c.is_finite() && c >= 1.0) || s.iter().any(|v| !(v.is_finite() && *v >= 0.0)) {
                return Err(bad(format!(
                    "the entry of '{name}' holds a negative or non-finite value"
                )));
            }
            entries.insert(
                name,
                ImatrixEntry {
                    sum_sq: s.iter().map(|&v| v as f64).collect(),
                    count: c as u64,
                },
            );
        }
        if let Some(name) = counts.keys().next() {
            return Err(bad(format!("'{name}{COUNTS}' has no '{name}{SUMS}'")));
        }
        if entries.is_empty() {
            return Err(bad("it holds no entries".into()));
        }
        Ok(Imatrix {
            entries,
            datasets,
            chunk_count,
            chunk_size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gguf_round_trip_and_means() {
        let mut m = Imatrix::new();
        m.add("blk.0.attn_q.weight", &[1.0, 2.0, 3.0, -1.0, 0.0, 1.0], 3);
        m.add("blk.0.attn_q.weight", &[2.0, 0.0, 0.0], 3);
        m.add("output.weight", &[0.5, 0.5], 2);
        m.datasets = vec!["calib.txt".into()];
        m.chunk_count = 3;
        m.chunk_size = 512;
        let e = m.get("blk.0.attn_q.weight").unwrap();
        assert_eq!(e.count, 3);
        assert_eq!(e.importance(), vec![2.0, 4.0 / 3.0, 10.0 / 3.0]);
        let (meta, tensors) = m.to_gguf();
        let bytes = gguf::model_bytes(&meta, &tensors).unwrap();
        let back = Imatrix::from_gguf(gguf::read_model_bytes(&bytes).unwrap()).unwrap();
        assert_eq!(back, m);
        assert!(m.importance("output.weight", 3).is_err());
        assert_eq!(m.importance("missing", 3).unwrap(), None);
    }

    #[test]
    fn malformed_files_are_calibration_errors() {
        let meta = |t: &str| vec![("general.type".to_string(), MetaValue::String(t.into()))];
        let f = |shape: Vec<usize>, data: Vec<f32>| StoredTensor::Float { shape, data };
        let cases: Vec<(&str, gguf::GgufContents)> = vec![
            ("general.type", (meta("model"), vec![])),
            ("no entries", (meta("imatrix"), vec![])),
            (
                "has no",
                (
                    meta("imatrix"),
                    vec![("w.in_sum2".into(), f(vec![1, 2], vec![1.0, 2.0]))],
                ),
            ),
            (
                "mixture",
                (
                    meta("imatrix"),
                    vec![
                        ("w.in_sum2".into(), f(vec![2, 2], vec![1.0; 4])),
                        ("w.counts".into(), f(vec![1, 2], vec![1.0; 2])),
                    ],
                ),
            ),
            (
                "negative",
                (
                    meta("imatrix"),
                    vec![
                        ("w.in_sum2".into(), f(vec![1, 2], vec![1.0, -2.0])),
                        ("w.counts".into(), f(vec![1, 1], vec![4.0])),
                    ],
                ),
            ),
            (
                "neither",
                (
                    meta("imatrix"),
                    vec![("w.weight".into(), f(vec![2], vec![1.0; 2]))],
                ),
            ),
        ];
        for (what, (meta, tensors)) in cases {
            let bytes = gguf::model_bytes(&meta, &tensors).unwrap();
            let e = Imatrix::from_gguf(gguf::read_model_bytes(&bytes).unwrap()).unwrap_err();
            assert!(
                matches!(e, Error::Calibration(_)) && e.to_string().contains(what),
                "{what}: {e}"
            );
        }
    }
}
