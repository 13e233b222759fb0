//! Calibration activations: the inputs `X` (`samples` x `K`) a layer sees, for the
//! data-dependent methods (GPTQ, AWQ) and for measuring output error.

use crate::error::{Error, Result};
use crate::io::{self, Array};
use std::collections::BTreeMap;
use std::path::Path;

/// Activations of one layer: `samples` rows of `k` inputs, row-major, all finite.
#[derive(Clone, Debug, PartialEq)]
pub struct Activations {
    samples: usize,
    k: usize,
    data: Vec<f32>,
}

impl Activations {
    /// Check and wrap `samples` x `k` values: at least one sample, `k > 0`, all finite.
    pub fn new(samples: usize, k: usize, data: Vec<f32>) -> Result<Self> {
        if samples == 0 || k == 0 {
            return Err(Error::Calibration(format!(
                "activations of shape [{samples}, {k}] are empty"
            )));
        }
        if samples.checked_mul(k) != Some(data.len()) {
            return Err(Error::Calibration(format!(
                "{} values do not make [{samples}, {k}] activations",
                data.len()
            )));
        }
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(Error::Calibration(format!(
                "activation [{}, {}] is {} (calibration data must be finite)",
                i / k,
                i % k,
                data[i]
            )));
        }
        Ok(Activations { samples, k, data })
    }

    /// Activations from an array of shape `[samples, K]`; more leading axes
    /// (`[batch, tokens, K]`) are flattened into samples.
    pub fn from_array(a: &Array) -> Result<Self> {
        match a.shape.as_slice() {
            [] | [_] => Err(Error::Calibration(format!(
                "activations have shape {:?}; they must be [samples, K]",
                a.shape
            ))),
            [lead @ .., k] => {
                let samples = lead.iter().product();
                Activations::new(samples, *k, a.data.clone())
            }
        }
    }

    pub fn samples(&self) -> usize {
        self.samples
    }
    /// Inputs per sample (the row length of the weights it calibrates).
    pub fn k(&self) -> usize {
        self.k
    }
    /// The values, sample after sample.
    pub fn data(&self) -> &[f32] {
        &self.data
    }
}

/// Calibration for a whole model.
#[derive(Clone, Debug, PartialEq)]
pub enum Calibration {
    /// One `[samples, K]` array (from `.npy`): used for every weight whose rows have length K.
    Shared(Activations),
    /// Per weight (from `.safetensors`): tensor name -> that layer's `[samples, K]` inputs.
    /// A weight `a.b.weight` also finds an entry named `a.b`.
    Named(BTreeMap<String, Activations>),
}

impl Calibration {
    /// Read `.npy` (shared) or `.safetensors` (per tensor), chosen by the file extension.
    pub fn load(path: impl AsRef<Path>) -> Result<Calibration> {
        let path = path.as_ref();
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase());
        let at = |e: Error| match e {
            Error::Calibration(m) => Error::Calibration(format!("{}: {m}", path.display())),
            other => other,
        };
        match ext.as_deref() {
            Some("npy") => {
                let a = io::read_npy(path)?;
                Activations::from_array(&a)
                    .map(Calibration::Shared)
                    .map_err(at)
            }
            Some("safetensors") => {
                let f = io::read_safetensors(path)?;
                let mut map = BTreeMap::new();
                for (name, a) in &f.tensors {
                    let act = Activations::from_array(a).map_err(|e| match e {
                        Error::Calibration(m) => {
                            Error::Calibration(format!("tensor '{name}': {m}"))
                        }
                        other => other,
                    });
                    map.insert(name.clone(), act.map_err(at)?);
                }
                if map.is_empty() {
                    return Err(Error::Calibration(format!(
                        "{} holds no float tensors",
                        path.display()
                    )));
                }
                Ok(Calibration::Named(map))
            }
            _ => Err(Error::Calibration(format!(
                "{}: calibration must be a .npy ([samples, K], for every weight of row \
                 length K) or a .safetensors (tensor name -> [samples, K])",
                path.display()
            ))),
        }
    }

    /// The activations for weight `name` with rows of length `k`: `None` when the
    /// calibration has none for it (a shared array of another K, or no entry of that name);
    /// an error when a named entry exists but its K differs.
    pub fn for_tensor(&self, name: &str, k: usize) -> Result<Option<&Activations>> {
        match self {
            Calibration::Shared(a) => Ok((a.k == k).then_some(a)),
            Calibration::Named(map) => {
                let found = map
                    .get(name)
                    .or_else(|| name.strip_suffix(".weight").and_then(|base| map.get(base)));
                match found {
                    Some(a) if a.k != k => Err(Error::Calibration(format!(
                        "activations for '{name}' have K = {}, but its rows have length {k}",
                        a.k
                    ))),
                    other => Ok(other),
                }
            }
        }
    }

    /// Describe what the calibration holds (for messages).
    pub fn describe(&self) -> String {
        match self {
            Calibration::Shared(a) => format!("[{}, {}]", a.samples, a.k),
            Calibration::Named(m) => format!("{} named arrays", m.len()),
        }
    }
}
