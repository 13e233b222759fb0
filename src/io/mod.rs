//! File formats: GGUF, safetensors, .npy.
//!
//! Every reader treats its input as untrusted: counts, sizes and offsets are checked against
//! the length of the input before anything is allocated, arithmetic is overflow-checked, and
//! every problem comes back as a typed [`Error`] (never a panic).
//!
//! - [`npy`]: `.npy` arrays (f32 read/write; f64 and f16 read, converted to f32).
//! - [`safetensors`]: every F32/F16/BF16 tensor of a `.safetensors` file as f32; f32 writer.
//! - [`gguf`]: GGUF v2/v3 reader and v3 writer, and the mapping of wgquant's tensors
//!   ([`StoredTensor`]) to standard GGUF tensors ([`write_model`], [`read_model`]).

pub mod gguf;
pub mod npy;
pub mod safetensors;

pub use gguf::{
    read_model, read_model_bytes, write_model, MetaType, MetaValue, Model, StoredTensor,
};
pub use npy::{read_npy, read_npy_bytes, write_npy};
pub use safetensors::{read_safetensors, read_safetensors_bytes, write_safetensors};

use crate::error::{Error, Result};
use std::path::Path;

/// A dense f32 array in C (row-major) order, shape in numpy order (last axis contiguous).
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Array {
    /// An array, checking that `shape` holds exactly `data.len()` values.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Self> {
        check_shape(&shape, data.len())?;
        Ok(Array { shape, data })
    }

    /// Number of values the shape describes (1 for a 0-d array).
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the array holds no values.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// The number of elements of `shape`, or an error if the product overflows.
pub(crate) fn shape_elems(shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| {
            Error::Shape(format!(
                "shape {shape:?} has more elements than fit in memory"
            ))
        })
}

/// Check that `shape` describes exactly `len` values.
pub(crate) fn check_shape(shape: &[usize], len: usize) -> Result<()> {
    let n = shape_elems(shape)?;
    if n != len {
        return Err(Error::Shape(format!(
            "shape {shape:?} describes {n} values, but {len} were given"
        )));
    }
    Ok(())
}

/// Prefix the message of a [`Error::Shape`] with what it is about.
pub(crate) fn shape_context(e: Error, what: &str) -> Error {
    match e {
        Error::Shape(m) => Error::Shape(format!("{what}: {m}")),
        other => other,
    }
}

/// Read a whole file, mapping failures to [`Error::Io`].
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// Little-endian f32 bytes to values.
pub(crate) fn f32_from_le(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Little-endian f16 bytes to f32 values.
pub(crate) fn f16_from_le(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(2)
        .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
        .collect()
}

/// Little-endian bf16 bytes to f32 values.
pub(crate) fn bf16_from_le(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(2)
        .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
        .collect()
}

/// f32 values as little-endian bytes (borrowed on little-endian targets).
pub(crate) fn f32_le_bytes(data: &[f32]) -> std::borrow::Cow<'_, [u8]> {
    if cfg!(target_endian = "little") {
        std::borrow::Cow::Borrowed(bytemuck::cast_slice(data))
    } else {
        std::borrow::Cow::Owned(data.iter().flat_map(|v| v.to_le_bytes()).collect())
    }
}
