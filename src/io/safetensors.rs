//! `.safetensors` files: every F32 / F16 / BF16 tensor as an f32 [`Array`]; tensors of other
//! dtypes are listed (name, dtype, shape) so callers can say they were skipped.

use super::{bf16_from_le, f16_from_le, f32_from_le, f32_le_bytes, Array};
use crate::error::{Error, Result};
use safetensors::tensor::{Dtype, SafeTensorError, SafeTensors, View};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

const KIND: &str = "safetensors";

/// A tensor whose dtype wgquant does not convert (integers, bool, fp8, f64, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedTensor {
    pub name: String,
    /// The safetensors dtype name, e.g. `"I64"`.
    pub dtype: String,
    pub shape: Vec<usize>,
}

/// The contents of a `.safetensors` file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SafetensorsFile {
    /// F32/F16/BF16 tensors converted to f32, in the order of their data in the file.
    pub tensors: Vec<(String, Array)>,
    /// Tensors of other dtypes, in file order.
    pub skipped: Vec<SkippedTensor>,
    /// The file's `__metadata__` strings.
    pub metadata: BTreeMap<String, String>,
}

impl SafetensorsFile {
    /// The tensor called `name`, if it was read.
    pub fn tensor(&self, name: &str) -> Option<&Array> {
        self.tensors.iter().find(|(n, _)| n == name).map(|(_, a)| a)
    }
}

/// Read every F32/F16/BF16 tensor of a `.safetensors` file as f32.
pub fn read_safetensors(path: impl AsRef<Path>) -> Result<SafetensorsFile> {
    let path = path.as_ref();
    let bytes = super::read_file(path)?;
    read_safetensors_bytes(&bytes).map_err(|e| e.at_path(path))
}

/// Parse the bytes of a `.safetensors` file; see [`read_safetensors`].
pub fn read_safetensors_bytes(bytes: &[u8]) -> Result<SafetensorsFile> {
    // read_metadata checks the header length, JSON, shapes (overflow-checked), that the
    // offsets tile the data section, and that the data section ends at the end of the file.
    let (header_len, meta) = SafeTensors::read_metadata(bytes).map_err(st_error)?;
    let data = bytes
        .get(8 + header_len..)
        .ok_or_else(|| Error::malformed(KIND, "data section missing"))?;
    let mut out = SafetensorsFile {
        metadata: meta
            .metadata()
            .as_ref()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
        ..Default::default()
    };
    for name in meta.offset_keys() {
        let info = meta
            .info(&name)
            .ok_or_else(|| Error::malformed(KIND, format!("tensor '{name}' has no entry")))?;
        let (start, end) = info.data_offsets;
        let raw = data.get(start..end).ok_or_else(|| {
            Error::malformed(
                KIND,
                format!("tensor '{name}' data {start}..{end} lies outside the file"),
            )
        })?;
        let values = match info.dtype {
            Dtype::F32 => f32_from_le(raw),
            Dtype::F16 => f16_from_le(raw),
            Dtype::BF16 => bf16_from_le(raw),
            other => {
                out.skipped.push(SkippedTensor {
                    name,
                    dtype: other.to_string(),
                    shape: info.shape.clone(),
                });
                continue;
            }
        };
        let array = Array::new(info.shape.clone(), values)
            .map_err(|e| Error::malformed(KIND, format!("tensor '{name}': {e}")))?;
        out.tensors.push((name, array));
    }
    Ok(out)
}

/// Write f32 tensors to a `.safetensors` file (no `__metadata__`).
///
/// The safetensors format stores tensors sorted by name; reading the file back gives them
/// in that order.
pub fn write_safetensors(path: impl AsRef<Path>, tensors: &[(String, Array)]) -> Result<()> {
    let path = path.as_ref();
    let views = f32_views(tensors)?;
    safetensors::serialize_to_file(views, None, path).map_err(|e| match e {
        SafeTensorError::IoError(io) => Error::io(path, io),
        other => Error::InvalidArgument(format!("cannot write {}: {other}", path.display())),
    })
}

/// The bytes of a `.safetensors` file holding f32 `tensors`.
pub fn safetensors_bytes(tensors: &[(String, Array)]) -> Result<Vec<u8>> {
    let views = f32_views(tensors)?;
    safetensors::serialize(views, None)
        .map_err(|e| Error::InvalidArgument(format!("cannot serialize safetensors: {e}")))
}

fn f32_views(tensors: &[(String, Array)]) -> Result<Vec<(&str, F32View<'_>)>> {
    let mut seen = std::collections::HashSet::new();
    tensors
        .iter()
        .map(|(name, a)| {
            if !seen.insert(name.as_str()) {
                return Err(Error::InvalidArgument(format!(
                    "tensor name '{name}' appears twice"
                )));
            }
            // The crate multiplies the shape without overflow checks: check it here.
            super::check_shape(&a.shape, a.data.len())
                .map_err(|e| super::shape_context(e, &format!("tensor '{name}'")))?;
            Ok((
                name.as_str(),
                F32View {
                    shape: &a.shape,
                    data: f32_le_bytes(&a.data),
                },
            ))
        })
        .collect()
}

struct F32View<'a> {
    shape: &'a [usize],
    data: Cow<'a, [u8]>,
}

impl View for F32View<'_> {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn st_error(e: SafeTensorError) -> Error {
    Error::malformed(KIND, e.to_string())
}
