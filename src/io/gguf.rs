//! GGUF: a reader for versions 2 and 3 and a writer for version 3, plus the mapping of
//! wgquant's tensors to standard GGUF tensors.
//!
//! # Container
//! Little-endian. Magic `GGUF`, version `u32`, tensor count `u64`, metadata count `u64`;
//! each metadata entry is a key (string: `u64` length + UTF-8 bytes), a value type `u32`
//! (see [`MetaType`]) and the value (an array is element type `u32`, count `u64`, elements).
//! Then one info per tensor: name, `n_dims: u32`, `dims: [u64; n_dims]` (`dims[0]` is the
//! contiguous row length, so `N` rows of `K` are `[K, N]`), ggml type `u32`, offset `u64`
//! relative to the data section. The data section starts at the end of the infos rounded
//! up to `general.alignment` (a `u32`, default 32).
//!
//! # How wgquant stores its tensors ([`write_model`], [`read_model`])
//! - [`StoredTensor::Float`]: an `F32` tensor, dims reversed from the numpy shape.
//! - [`StoredTensor::Quantized`] in `f32`, `q8_0`, `q4_0`, `q4_1`: a tensor of that GGUF type
//!   (`F32`, `Q8_0`, `Q4_0`, `Q4_1`) holding [`QuantizedTensor::bytes`], dims `[k, rows]`.
//! - [`StoredTensor::Quantized`] in an int format (no GGUF type exists for it): standard
//!   tensors `<name>.codes` (`I8`, dims `[k * bits / 8, rows]`, the code bytes),
//!   `<name>.scales` (`F16`, dims `[k / group, rows]`) and, for asymmetric formats,
//!   `<name>.zeros` (`I8`, dims `[k / group, rows]`, the zero points as bytes).
//! - Every quantized tensor also gets the metadata string `wgquant.format.<name>` = its
//!   format name (e.g. `int4_g128`), which is how the reader knows to reassemble it (and
//!   that an `F32` tensor was a [`QuantizedTensor`] in format `f32`).
//!
//! Any GGUF reader can open these files; no GGUF type id is invented.
//!
//! # Untrusted input
//! Every count, length, dimension and offset is checked against the file length before it
//! is used or allocated, arithmetic is overflow-checked, and failures are typed errors:
//! [`Error::Malformed`] for damaged files, [`Error::UnsupportedFormat`] for valid files
//! using something wgquant does not read (e.g. an `IQ2_XXS` tensor). Metadata arrays take
//! at most about 32 bytes of memory per byte they occupy in the file. Tensor data must lie
//! inside the file at aligned offsets, and no two tensors may share bytes, so all tensors
//! together hold at most the file's length (at most 4x that once decoded to f32).
//!
//! # Memory-mapped files
//! [`GgufReader::open`] and [`read_model`] read a file through a read-only memory map
//! ([`GgufFile`]): the header is parsed from the map and tensors are slices of it, with
//! the same checks as in-memory input. See [`Mapped`] for what that requires of the file.

use crate::error::{Error, Result};
use crate::format::{Format, GgmlType, IntFormat, IntPlanes, QuantizedTensor};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const KIND: &str = "GGUF";
/// What I/O errors on in-memory input name as their path.
const MEMORY: &str = "<memory>";

/// The four bytes every GGUF file starts with.
pub const MAGIC: &[u8; 4] = b"GGUF";
/// The version [`write_model`] writes.
pub const VERSION: u32 = 3;
/// Alignment of tensor data when `general.alignment` is absent, and what the writer uses.
pub const DEFAULT_ALIGNMENT: u32 = 32;
/// Most dimensions a tensor may have (ggml's `GGML_MAX_DIMS`).
pub const MAX_DIMS: usize = 4;
/// Longest tensor name, in bytes, that llama.cpp accepts (`GGML_MAX_NAME` - 1); the writer
/// refuses longer names so that every file it writes loads in llama.cpp.
pub const MAX_NAME_LEN: usize = 63;
/// Metadata key prefix of the format of each quantized tensor: `wgquant.format.<name>`.
pub const FORMAT_KEY_PREFIX: &str = "wgquant.format.";
/// Metadata key of the writing wgquant version.
pub const VERSION_KEY: &str = "wgquant.version";
/// Metadata key of the data alignment.
pub const ALIGNMENT_KEY: &str = "general.alignment";

/// Deepest nesting of metadata arrays the reader accepts.
const MAX_ARRAY_DEPTH: usize = 16;
/// Smallest possible metadata entry: empty key, type, one-byte value.
const MIN_KV_BYTES: u64 = 8 + 4 + 1;
/// Smallest possible tensor info: empty name, n_dims, type, offset.
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 4 + 4 + 8;

/// The type of a metadata value (GGUF `gguf_metadata_value_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum MetaType {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
}

impl MetaType {
    /// The type for a GGUF value type id.
    pub fn from_id(id: u32) -> Option<MetaType> {
        use MetaType::*;
        Some(match id {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// The GGUF value type id.
    pub fn id(self) -> u32 {
        self as u32
    }

    /// The fewest bytes a value of this type occupies in a file.
    fn min_bytes(self) -> u64 {
        use MetaType::*;
        match self {
            U8 | I8 | Bool => 1,
            U16 | I16 => 2,
            U32 | I32 | F32 => 4,
            U64 | I64 | F64 | String => 8,
            Array => 12,
        }
    }
}

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum MetaValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    /// A string. The reader replaces invalid UTF-8 with U+FFFD.
    String(String),
    /// An array of values that all have the given element type (which may be `Array`).
    Array(MetaType, Vec<MetaValue>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl MetaValue {
    /// The value's type.
    pub fn meta_type(&self) -> MetaType {
        match self {
            MetaValue::U8(_) => MetaType::U8,
            MetaValue::I8(_) => MetaType::I8,
            MetaValue::U16(_) => MetaType::U16,
            MetaValue::I16(_) => MetaType::I16,
            MetaValue::U32(_) => MetaType::U32,
            MetaValue::I32(_) => MetaType::I32,
            MetaValue::F32(_) => MetaType::F32,
            MetaValue::Bool(_) => MetaType::Bool,
            MetaValue::String(_) => MetaType::String,
            MetaValue::Array(..) => MetaType::Array,
            MetaValue::U64(_) => MetaType::U64,
            MetaValue::I64(_) => MetaType::I64,
            MetaValue::F64(_) => MetaType::F64,
        }
    }

    /// An array of strings.
    pub fn string_array<S: Into<String>>(items: impl IntoIterator<Item = S>) -> MetaValue {
        MetaValue::Array(
            MetaType::String,
            items
                .into_iter()
                .map(|s| MetaValue::String(s.into()))
                .collect(),
        )
    }

    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value of any integer type, if it is non-negative.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetaValue::U8(v) => Some(v as u64),
            MetaValue::U16(v) => Some(v as u64),
            MetaValue::U32(v) => Some(v as u64),
            MetaValue::U64(v) => Some(v),
            MetaValue::I8(v) => u64::try_from(v).ok(),
            MetaValue::I16(v) => u64::try_from(v).ok(),
            MetaValue::I32(v) => u64::try_from(v).ok(),
            MetaValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value of any integer type, if it fits an `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            MetaValue::U64(v) => i64::try_from(v).ok(),
            MetaValue::I8(v) => Some(v as i64),
            MetaValue::I16(v) => Some(v as i64),
            MetaValue::I32(v) => Some(v as i64),
            MetaValue::I64(v) => Some(v),
            _ => self.as_u64().map(|v| v as i64),
        }
    }

    /// The value of a float type.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetaValue::F32(v) => Some(v as f64),
            MetaValue::F64(v) => Some(v),
            _ => None,
        }
    }

    /// The value, if this is a bool.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            MetaValue::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The elements, if this is an array.
    pub fn as_array(&self) -> Option<&[MetaValue]> {
        match self {
            MetaValue::Array(_, v) => Some(v),
            _ => None,
        }
    }
}

impl From<&str> for MetaValue {
    fn from(s: &str) -> Self {
        MetaValue::String(s.to_string())
    }
}
impl From<String> for MetaValue {
    fn from(s: String) -> Self {
        MetaValue::String(s)
    }
}
impl From<u32> for MetaValue {
    fn from(v: u32) -> Self {
        MetaValue::U32(v)
    }
}
impl From<u64> for MetaValue {
    fn from(v: u64) -> Self {
        MetaValue::U64(v)
    }
}
impl From<i32> for MetaValue {
    fn from(v: i32) -> Self {
        MetaValue::I32(v)
    }
}
impl From<f32> for MetaValue {
    fn from(v: f32) -> Self {
        MetaValue::F32(v)
    }
}
impl From<bool> for MetaValue {
    fn from(v: bool) -> Self {
        MetaValue::Bool(v)
    }
}

/// The ggml name of a type id, including the ones wgquant does not read (for messages).
pub fn ggml_type_name(id: u32) -> Option<&'static str> {
    const NAMES: [&str; 40] = [
        "F32", "F16", "Q4_0", "Q4_1", "", "", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K", "Q3_K",
        "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S",
        "IQ2_S", "IQ4_XS", "I8", "I16", "I32", "I64", "F64", "IQ1_M", "BF16", "", "", "", "TQ1_0",
        "TQ2_0", "", "", "", "MXFP4",
    ];
    NAMES.get(id as usize).copied().filter(|n| !n.is_empty())
}

/// One tensor's entry in the header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    /// GGUF order: `dims[0]` is the contiguous row length.
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    /// Offset of the data from the start of the data section.
    pub offset: u64,
    /// Bytes of data (checked to lie inside the file).
    pub n_bytes: u64,
}

impl TensorInfo {
    /// The shape in numpy order (dims reversed).
    pub fn shape(&self) -> Vec<usize> {
        // Every dim was checked to fit a usize when the header was read.
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }

    /// Number of elements (the product was checked when the header was read).
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().fold(1u64, |a, &d| a.saturating_mul(d))
    }
}

/// Everything before the tensor data.
#[derive(Clone, Debug, PartialEq)]
pub struct GgufHeader {
    /// 2 or 3.
    pub version: u32,
    /// Metadata entries in file order (keys are unique).
    pub metadata: Vec<(String, MetaValue)>,
    /// Tensor infos in file order (names are unique).
    pub tensors: Vec<TensorInfo>,
    /// Data alignment in bytes.
    pub alignment: u64,
    /// Absolute offset of the data section.
    pub data_offset: u64,
    /// Length of the file.
    pub file_len: u64,
}

impl GgufHeader {
    /// The value of a metadata key.
    pub fn metadata(&self, key: &str) -> Option<&MetaValue> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// A GGUF file whose header has been read and checked; tensor data is read on demand.
///
/// The bytes come from a [`GgufSource`]: a memory map of a file ([`GgufReader::open`], also
/// named [`GgufFile`]), a byte slice ([`GgufReader::from_bytes`]) or any `Read + Seek`
/// stream of known length ([`GgufReader::new`]). Mapped and in-memory readers also hand out
/// each tensor's bytes without copying them ([`GgufReader::tensor_bytes`]).
pub struct GgufReader<S> {
    header: GgufHeader,
    src: S,
    /// The file's path, for messages (None for in-memory input).
    path: Option<PathBuf>,
}

/// A GGUF file read through a read-only memory map: [`GgufFile::open`] parses and checks
/// the header, [`GgufFile::tensor_bytes`] borrows a tensor's raw bytes straight from the
/// map (no copy, no read), and [`GgufFile::into_model`] decodes every tensor.
///
/// ```no_run
/// # fn main() -> wgquant::Result<()> {
/// use wgquant::io::gguf::GgufFile;
/// let file = GgufFile::open("model.gguf")?;
/// for (i, t) in file.header().tensors.iter().enumerate() {
///     let raw: &[u8] = file.tensor_bytes(i)?; // t.n_bytes bytes of t.ggml_type blocks
///     println!("{} {:?} {} bytes", t.name, t.ggml_type, raw.len());
/// }
/// # Ok(())
/// # }
/// ```
pub type GgufFile = GgufReader<Mapped>;

/// The read-only memory map of a GGUF file (the source of a [`GgufFile`]).
///
/// The bytes are untrusted input, checked like any other. What a map cannot protect
/// against is the file changing underneath it: if another process writes to or truncates
/// the file while it is mapped, the behaviour is undefined (memmap2's `Mmap::map` says so;
/// in practice changed bytes or a SIGBUS on pages that no longer exist). Do not modify a
/// model file while it is open.
pub struct Mapped(memmap2::Mmap);

impl Mapped {
    /// Map `file` read-only.
    fn map(file: &File, path: &Path) -> Result<Mapped> {
        // SAFETY: memmap2 documents that a mapping is undefined behaviour if the file is
        // changed (written or truncated) by anyone while it is mapped: Rust would then see
        // a `&[u8]` whose contents change under it, and a truncated file makes reads of the
        // lost pages fault (SIGBUS). No safe API can rule that out for a file on disk, so
        // this is sound only as long as nobody modifies the model file while it is open,
        // the same contract every mmap-based model loader (llama.cpp included) has. What
        // we do ourselves is safe: the map is read-only (we never write through it, and a
        // private read-only mapping cannot change the file), and its bytes are treated as
        // untrusted input exactly like bytes from memory: every count, size and offset is
        // checked against the mapped length before it is used.
        let map = unsafe { memmap2::Mmap::map(file) }.map_err(|e| Error::io(path, e))?;
        Ok(Mapped(map))
    }

    /// Every byte of the file.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// GGUF bytes held in memory (the source of [`GgufReader::from_bytes`]).
#[derive(Clone, Copy)]
pub struct InMemory<'a>(&'a [u8]);

impl<'a> InMemory<'a> {
    /// Every byte of the file.
    pub fn bytes(&self) -> &'a [u8] {
        self.0
    }
}

mod sealed {
    use std::borrow::Cow;
    use std::io;

    /// Byte access for the parser. Every range asked for has been checked to lie inside the
    /// input's length first; a short stream still fails with `UnexpectedEof`.
    pub trait Sealed {
        /// `n` bytes at `pos`, asked for front to back while the header is parsed (a stream
        /// is already positioned at `pos` and does not seek).
        fn next(&mut self, pos: u64, n: usize) -> io::Result<Cow<'_, [u8]>>;
        /// Fill `buf` from `pos`, as [`Sealed::next`].
        fn next_into(&mut self, pos: u64, buf: &mut [u8]) -> io::Result<()> {
            buf.copy_from_slice(&self.next(pos, buf.len())?);
            Ok(())
        }
        /// `n` bytes at `pos`, anywhere in the input.
        fn at(&mut self, pos: u64, n: usize) -> io::Result<Cow<'_, [u8]>>;
    }

    /// `bytes[pos..pos + n]`, or `UnexpectedEof`.
    pub fn slice_at(bytes: &[u8], pos: u64, n: usize) -> io::Result<&[u8]> {
        usize::try_from(pos)
            .ok()
            .and_then(|p| bytes.get(p..p.checked_add(n)?))
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))
    }
}

/// Where a [`GgufReader`] reads its bytes: [`Mapped`] (a memory-mapped file), [`InMemory`]
/// (a byte slice) or any `Read + Seek` type. Sealed: it cannot be implemented outside
/// wgquant.
pub trait GgufSource: sealed::Sealed {}
impl<S: sealed::Sealed> GgufSource for S {}

impl sealed::Sealed for Mapped {
    fn next(&mut self, pos: u64, n: usize) -> std::io::Result<Cow<'_, [u8]>> {
        self.at(pos, n)
    }
    fn at(&mut self, pos: u64, n: usize) -> std::io::Result<Cow<'_, [u8]>> {
        sealed::slice_at(&self.0, pos, n).map(Cow::Borrowed)
    }
}

impl sealed::Sealed for InMemory<'_> {
    fn next(&mut self, pos: u64, n: usize) -> std::io::Result<Cow<'_, [u8]>> {
        self.at(pos, n)
    }
    fn at(&mut self, pos: u64, n: usize) -> std::io::Result<Cow<'_, [u8]>> {
        sealed::slice_at(self.0, pos, n).map(Cow::Borrowed)
    }
}

impl<R: Read + Seek> sealed::Sealed for R {
    fn next(&mut self, _pos: u64, n: usize) -> std::io::Result<Cow<'_, [u8]>> {
        // n was checked against the stream's stated length before this allocation.
        let mut v = vec![0u8; n];
        self.read_exact(&mut v)?;
        Ok(Cow::Owned(v))
    }
    fn next_into(&mut self, _pos: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.read_exact(buf)
    }
    fn at(&mut self, pos: u64, n: usize) -> std::io::Result<Cow<'_, [u8]>> {
        self.seek(SeekFrom::Start(pos))?;
        self.next(pos, n)
    }
}

impl GgufReader<Mapped> {
    /// Open a GGUF file through a read-only memory map and read its header. Tensor data
    /// stays in the map until asked for: [`GgufReader::tensor_bytes`] borrows it,
    /// [`GgufReader::tensor_data`] and [`GgufReader::into_model`] copy or decode it.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let map = Mapped::map(&file, path)?;
        let len = map.0.len() as u64;
        GgufReader::with_path(map, len, Some(path.to_path_buf())).map_err(|e| e.at_path(path))
    }

    /// The raw bytes of tensor `index` (in header order), borrowed from the map: exactly
    /// [`TensorInfo::n_bytes`] bytes of `ggml_type` blocks, checked to lie inside the file
    /// when the header was read.
    pub fn tensor_bytes(&self, index: usize) -> Result<&[u8]> {
        let (start, n) = tensor_range(&self.header, index)?;
        sealed::slice_at(&self.src.0, start, n).map_err(|e| Error::io(self.path(), e))
    }

    /// The mapped file.
    pub fn mapped(&self) -> &Mapped {
        &self.src
    }
}

impl<'a> GgufReader<InMemory<'a>> {
    /// Read the header of a GGUF file held in memory.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Self> {
        GgufReader::with_path(InMemory(bytes), bytes.len() as u64, None)
    }

    /// The raw bytes of tensor `index` (in header order), borrowed from the input.
    pub fn tensor_bytes(&self, index: usize) -> Result<&'a [u8]> {
        let (start, n) = tensor_range(&self.header, index)?;
        sealed::slice_at(self.src.0, start, n).map_err(|e| Error::io(MEMORY, e))
    }
}

impl<R: Read + Seek> GgufReader<R> {
    /// Read the header from `src`, positioned at the start of a GGUF file of `len` bytes.
    pub fn new(src: R, len: u64) -> Result<Self> {
        GgufReader::with_path(src, len, None)
    }
}

impl<S: GgufSource> GgufReader<S> {
    fn with_path(mut src: S, len: u64, path: Option<PathBuf>) -> Result<Self> {
        let header = {
            let mut s = Src {
                r: &mut src,
                pos: 0,
                len,
                path: path.as_deref().unwrap_or(Path::new(MEMORY)),
            };
            read_header(&mut s)?
        };
        Ok(GgufReader { header, src, path })
    }

    /// The header.
    pub fn header(&self) -> &GgufHeader {
        &self.header
    }

    /// The file's path (`<memory>` for in-memory input).
    pub fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new(MEMORY))
    }

    /// The raw bytes of tensor `index` (in header order), copied.
    pub fn tensor_data(&mut self, index: usize) -> Result<Vec<u8>> {
        Data {
            src: &mut self.src,
            path: self.path.as_deref().unwrap_or(Path::new(MEMORY)),
            h: &self.header,
        }
        .read(index)
        .map(Cow::into_owned)
    }

    /// Read every tensor and reassemble wgquant's tensors; see [`read_model`].
    pub fn into_model(self) -> Result<Model> {
        let GgufReader {
            header,
            mut src,
            path,
        } = self;
        match path {
            Some(p) => build_model(header, &mut src, &p).map_err(|e| e.at_path(p)),
            None => build_model(header, &mut src, Path::new(MEMORY)),
        }
    }
}

/// Absolute start and length of tensor `index`'s data.
fn tensor_range(h: &GgufHeader, index: usize) -> Result<(u64, usize)> {
    let info = h.tensors.get(index).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "tensor index {index} out of range (the file has {})",
            h.tensors.len()
        ))
    })?;
    // Bounds were checked against the file length when the header was read.
    let n = usize::try_from(info.n_bytes)
        .map_err(|_| Error::malformed(KIND, format!("tensor '{}' is too large", info.name)))?;
    Ok((h.data_offset + info.offset, n))
}

/// Access to the tensor data of a parsed file.
struct Data<'a, S> {
    src: &'a mut S,
    path: &'a Path,
    h: &'a GgufHeader,
}

impl<S: GgufSource> Data<'_, S> {
    /// The raw bytes of tensor `index` (borrowed from maps and slices).
    fn read(&mut self, index: usize) -> Result<Cow<'_, [u8]>> {
        let (start, n) = tensor_range(self.h, index)?;
        let path = self.path;
        self.src.at(start, n).map_err(|e| Error::io(path, e))
    }
}

/// A GGUF file's metadata entries and tensors, as [`write_model`] takes them.
pub type GgufContents = (Vec<(String, MetaValue)>, Vec<(String, StoredTensor)>);

/// A tensor as wgquant stores it.
#[derive(Clone, Debug, PartialEq)]
pub enum StoredTensor {
    /// Plain f32 values; `shape` in numpy order (e.g. `[N, K]` for N rows of K).
    Float { shape: Vec<usize>, data: Vec<f32> },
    /// A quantized matrix.
    Quantized(QuantizedTensor),
}

impl StoredTensor {
    /// The shape in numpy order (`[rows, k]` for quantized tensors).
    pub fn shape(&self) -> Vec<usize> {
        match self {
            StoredTensor::Float { shape, .. } => shape.clone(),
            StoredTensor::Quantized(q) => vec![q.rows(), q.k()],
        }
    }
}

/// A GGUF file read by [`read_model`]: its metadata and tensors.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    version: u32,
    alignment: u64,
    metadata: Vec<(String, MetaValue)>,
    tensors: Vec<(String, StoredTensor)>,
    index: HashMap<String, usize>,
}

impl Model {
    /// The file's GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }
    /// The file's data alignment.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }
    /// The value of a metadata key.
    pub fn metadata(&self, key: &str) -> Option<&MetaValue> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    /// Every metadata entry, in file order (including `general.alignment`, `wgquant.*`).
    pub fn metadata_entries(&self) -> &[(String, MetaValue)] {
        &self.metadata
    }
    /// Tensor names in file order (an int tensor takes the place of its first plane).
    pub fn tensor_names(&self) -> Vec<&str> {
        self.tensors.iter().map(|(n, _)| n.as_str()).collect()
    }
    /// The tensor called `name`.
    pub fn tensor(&self, name: &str) -> Option<&StoredTensor> {
        self.index.get(name).map(|&i| &self.tensors[i].1)
    }
    /// Every tensor, in file order.
    pub fn tensors(&self) -> &[(String, StoredTensor)] {
        &self.tensors
    }
    /// Take the tensors out.
    pub fn into_tensors(self) -> Vec<(String, StoredTensor)> {
        self.tensors
    }
}

/// Read a GGUF file (v2 or v3), reassembling wgquant's tensors:
/// - `F32`, `F16`, `BF16` (and `I8`, `I16`, `I32` not part of an int tensor) become
///   [`StoredTensor::Float`] with the shape in numpy order;
/// - `Q8_0`, `Q4_0`, `Q4_1` become [`StoredTensor::Quantized`] with `k = dims[0]` and
///   `rows` the product of the other dims;
/// - tensors named by `wgquant.format.<name>` metadata become [`StoredTensor::Quantized`]
///   in that format (int planes are joined back into one tensor).
///
/// The file is read through a read-only memory map ([`GgufFile`]): the header is parsed
/// from the map, and each tensor is decoded from its slice of the map; no part of the file
/// is copied into a buffer first.
pub fn read_model(path: impl AsRef<Path>) -> Result<Model> {
    GgufReader::open(path)?.into_model()
}

/// [`read_model`] on a file held in memory.
pub fn read_model_bytes(bytes: &[u8]) -> Result<Model> {
    GgufReader::from_bytes(bytes)?.into_model()
}

// ---------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------

/// A reader that knows its position and the file length, so every read is bounds-checked
/// before anything is allocated.
struct Src<'a, S> {
    r: &'a mut S,
    pos: u64,
    len: u64,
    path: &'a Path,
}

impl<S: GgufSource> Src<'_, S> {
    fn remaining(&self) -> u64 {
        self.len - self.pos
    }

    /// Check that `n` more bytes exist.
    fn need(&self, n: u64) -> Result<()> {
        if n > self.remaining() {
            return Err(Error::malformed(
                KIND,
                format!(
                    "needs {n} bytes at offset {}, but the file ends after {} more \
                     (truncated or corrupt)",
                    self.pos,
                    self.remaining()
                ),
            ));
        }
        Ok(())
    }

    fn eof(&self, e: std::io::Error) -> Error {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Error::malformed(KIND, format!("file ends early at offset {}", self.pos))
        } else {
            Error::io(self.path, e)
        }
    }

    fn fill(&mut self, buf: &mut [u8]) -> Result<()> {
        self.need(buf.len() as u64)?;
        if let Err(e) = self.r.next_into(self.pos, buf) {
            return Err(self.eof(e));
        }
        self.pos += buf.len() as u64;
        Ok(())
    }

    fn arr<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut b = [0u8; N];
        self.fill(&mut b)?;
        Ok(b)
    }

    fn u32(&mut self) -> Result<u32> {
        self.arr().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64> {
        self.arr().map(u64::from_le_bytes)
    }

    /// A length-prefixed string, passed to `f` as bytes (borrowed from maps and slices).
    fn string_with<T>(&mut self, f: impl FnOnce(&[u8]) -> T) -> Result<T> {
        let n = self.u64()?;
        if n > self.remaining() {
            return Err(Error::malformed(
                KIND,
                format!(
                    "string length {n} at offset {} exceeds the {} bytes left in the file",
                    self.pos - 8,
                    self.remaining()
                ),
            ));
        }
        // n <= remaining <= len; on a 32-bit target a longer string cannot be held at all.
        let n = usize::try_from(n)
            .map_err(|_| Error::malformed(KIND, format!("string of {n} bytes is too long")))?;
        let pos = self.pos;
        let out = match self.r.next(pos, n) {
            Ok(b) => f(&b),
            Err(e) => return Err(self.eof(e)),
        };
        self.pos += n as u64;
        Ok(out)
    }

    /// A string that must be valid UTF-8 (keys and tensor names).
    fn name(&mut self) -> Result<String> {
        self.string_with(|b| std::str::from_utf8(b).map(str::to_owned))?
            .map_err(|_| Error::malformed(KIND, "name is not valid UTF-8"))
    }

    fn value(&mut self, ty: MetaType, depth: usize) -> Result<MetaValue> {
        Ok(match ty {
            MetaType::U8 => MetaValue::U8(self.arr::<1>()?[0]),
            MetaType::I8 => MetaValue::I8(self.arr::<1>()?[0] as i8),
            MetaType::U16 => MetaValue::U16(u16::from_le_bytes(self.arr()?)),
            MetaType::I16 => MetaValue::I16(i16::from_le_bytes(self.arr()?)),
            MetaType::U32 => MetaValue::U32(self.u32()?),
            MetaType::I32 => MetaValue::I32(i32::from_le_bytes(self.arr()?)),
            MetaType::F32 => MetaValue::F32(f32::from_le_bytes(self.arr()?)),
            MetaType::Bool => MetaValue::Bool(self.arr::<1>()?[0] != 0),
            MetaType::String => {
                MetaValue::String(self.string_with(|b| String::from_utf8_lossy(b).into_owned())?)
            }
            MetaType::U64 => MetaValue::U64(self.u64()?),
            MetaType::I64 => MetaValue::I64(i64::from_le_bytes(self.arr()?)),
            MetaType::F64 => MetaValue::F64(f64::from_le_bytes(self.arr()?)),
            MetaType::Array => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(Error::malformed(
                        KIND,
                        format!("metadata arrays nested deeper than {MAX_ARRAY_DEPTH}"),
                    ));
                }
                let id = self.u32()?;
                let elem = MetaType::from_id(id).ok_or_else(|| {
                    Error::malformed(KIND, format!("unknown array element type id {id}"))
                })?;
                let count = self.u64()?;
                let min = count.checked_mul(elem.min_bytes());
                if min.is_none_or(|m| m > self.remaining()) {
                    return Err(Error::malformed(
                        KIND,
                        format!(
                            "array of {count} {elem:?} values at offset {} cannot fit in the \
                             {} bytes left in the file",
                            self.pos - 12,
                            self.remaining()
                        ),
                    ));
                }
                // count <= remaining bytes; reserve little up front all the same, so memory
                // only grows with values actually read.
                let mut items = Vec::with_capacity(count.min(1 << 12) as usize);
                for _ in 0..count {
                    items.push(self.value(elem, depth + 1)?);
                }
                MetaValue::Array(elem, items)
            }
        })
    }
}

/// Prefix a malformed-file reason with context.
fn ctx<T>(r: Result<T>, what: impl FnOnce() -> String) -> Result<T> {
    r.map_err(|e| match e {
        Error::Malformed { kind, path, reason } => Error::Malformed {
            kind,
            path,
            reason: format!("{}: {reason}", what()),
        },
        other => other,
    })
}

fn read_header<S: GgufSource>(s: &mut Src<'_, S>) -> Result<GgufHeader> {
    if s.len < 4 {
        return Err(Error::malformed(
            KIND,
            format!("file of {} bytes is too short to be GGUF", s.len),
        ));
    }
    let magic: [u8; 4] = s.arr()?;
    if &magic != MAGIC {
        return Err(Error::malformed(
            KIND,
            format!(
                "not a GGUF file: starts with {:?}, not \"GGUF\"",
                String::from_utf8_lossy(&magic)
            ),
        ));
    }
    let version = ctx(s.u32(), || "version".into())?;
    match version {
        2 | 3 => {}
        1 => {
            return Err(Error::UnsupportedFormat(
                "GGUF version 1 (32-bit counts); wgquant reads versions 2 and 3".into(),
            ))
        }
        v if v.swap_bytes() <= 3 => {
            return Err(Error::UnsupportedFormat(format!(
                "big-endian GGUF (version {}); wgquant reads little-endian files",
                v.swap_bytes()
            )))
        }
        v => {
            return Err(Error::UnsupportedFormat(format!(
                "GGUF version {v}; wgquant reads versions 2 and 3"
            )))
        }
    }
    let tensor_count = ctx(s.u64(), || "tensor count".into())?;
    let kv_count = ctx(s.u64(), || "metadata count".into())?;
    let min = tensor_count
        .checked_mul(MIN_TENSOR_INFO_BYTES)
        .and_then(|t| {
            kv_count
                .checked_mul(MIN_KV_BYTES)
                .and_then(|k| k.checked_add(t))
        });
    if min.is_none_or(|m| m > s.remaining()) {
        return Err(Error::malformed(
            KIND,
            format!(
                "{tensor_count} tensors and {kv_count} metadata entries cannot fit in a file \
                 of {} bytes",
                s.len
            ),
        ));
    }

    // Both counts are now bounded by the file length.
    let mut metadata = Vec::with_capacity(kv_count as usize);
    let mut keys = HashSet::with_capacity(kv_count as usize);
    for i in 0..kv_count {
        let key = ctx(s.name(), || format!("key of metadata entry {i}"))?;
        let value = ctx(
            (|| {
                let id = s.u32()?;
                let ty = MetaType::from_id(id)
                    .ok_or_else(|| Error::malformed(KIND, format!("unknown value type id {id}")))?;
                s.value(ty, 0)
            })(),
            || format!("metadata '{key}'"),
        )?;
        if !keys.insert(key.clone()) {
            return Err(Error::malformed(
                KIND,
                format!("metadata key '{key}' appears twice"),
            ));
        }
        metadata.push((key, value));
    }

    let alignment = match metadata.iter().find(|(k, _)| k == ALIGNMENT_KEY) {
        None => DEFAULT_ALIGNMENT as u64,
        Some((_, MetaValue::U32(a))) if a.is_power_of_two() => *a as u64,
        Some((_, v)) => {
            return Err(Error::malformed(
                KIND,
                format!("{ALIGNMENT_KEY} must be a u32 power of two, found {v:?}"),
            ))
        }
    };

    let mut tensors = Vec::with_capacity(tensor_count as usize);
    let mut names = HashSet::with_capacity(tensor_count as usize);
    for i in 0..tensor_count {
        let info = ctx(read_tensor_info(s), || format!("tensor info {i}"))?;
        if !names.insert(info.name.clone()) {
            return Err(Error::malformed(
                KIND,
                format!("tensor name '{}' appears twice", info.name),
            ));
        }
        tensors.push(info);
    }

    let data_offset = s
        .pos
        .checked_next_multiple_of(alignment)
        .ok_or_else(|| Error::malformed(KIND, "data offset overflows"))?;
    for t in &tensors {
        let end = data_offset
            .checked_add(t.offset)
            .and_then(|o| o.checked_add(t.n_bytes));
        if end.is_none_or(|e| e > s.len) {
            return Err(Error::malformed(
                KIND,
                format!(
                    "tensor '{}' ({} bytes at data offset {}) extends past the end of the \
                     file ({} bytes, data section at {data_offset}): truncated or corrupt",
                    t.name, t.n_bytes, t.offset, s.len
                ),
            ));
        }
        if t.offset % alignment != 0 {
            return Err(Error::malformed(
                KIND,
                format!(
                    "tensor '{}' has data offset {}, which is not a multiple of the \
                     alignment {alignment}",
                    t.name, t.offset
                ),
            ));
        }
    }
    // Tensors may not share bytes (llama.cpp requires them back to back): otherwise a
    // small file could name the same large range many times and make readers hold many
    // copies of it. With this, the tensors' data adds up to at most the file length.
    let mut ranges: Vec<(u64, u64, usize)> = tensors
        .iter()
        .enumerate()
        .filter(|(_, t)| t.n_bytes > 0)
        .map(|(i, t)| (t.offset, t.offset + t.n_bytes, i))
        .collect();
    ranges.sort_unstable();
    for pair in ranges.windows(2) {
        let ((_, end, a), (start, _, b)) = (pair[0], pair[1]);
        if start < end {
            return Err(Error::malformed(
                KIND,
                format!(
                    "the data of tensors '{}' and '{}' overlap",
                    tensors[a].name, tensors[b].name
                ),
            ));
        }
    }
    Ok(GgufHeader {
        version,
        metadata,
        tensors,
        alignment,
        data_offset,
        file_len: s.len,
    })
}

fn read_tensor_info<S: GgufSource>(s: &mut Src<'_, S>) -> Result<TensorInfo> {
    let name = s.name()?;
    let named = |e: Error| match e {
        Error::Malformed { kind, path, reason } => Error::Malformed {
            kind,
            path,
            reason: format!("'{name}': {reason}"),
        },
        other => other,
    };
    let n_dims = s.u32().map_err(named)?;
    if n_dims as usize > MAX_DIMS {
        return Err(named(Error::malformed(
            KIND,
            format!("{n_dims} dimensions (at most {MAX_DIMS})"),
        )));
    }
    let mut dims = Vec::with_capacity(n_dims as usize);
    for _ in 0..n_dims {
        let d = s.u64().map_err(named)?;
        if d > i64::MAX as u64 || usize::try_from(d).is_err() {
            return Err(named(Error::malformed(
                KIND,
                format!("dimension {d} is too large"),
            )));
        }
        dims.push(d);
    }
    let id = s.u32().map_err(named)?;
    let ggml_type = GgmlType::from_id(id).ok_or_else(|| {
        let known = ggml_type_name(id)
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        Error::UnsupportedFormat(format!(
            "GGUF tensor '{name}' has ggml type id {id}{known}, which wgquant does not read \
             (it reads F32, F16, BF16, Q8_0, Q4_0, Q4_1, I8, I16, I32)"
        ))
    })?;
    let offset = s.u64().map_err(named)?;
    // The product of the non-zero dims bounds every partial product (rows, elements).
    let nonzero = dims
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= i64::MAX as u64)
        .ok_or_else(|| named(Error::malformed(KIND, format!("dims {dims:?} overflow"))))?;
    let n_elements = if dims.contains(&0) { 0 } else { nonzero };
    let (bv, bb) = ggml_type.block_layout();
    let row = dims.first().copied().unwrap_or(1);
    if row % bv as u64 != 0 {
        return Err(named(Error::malformed(
            KIND,
            format!(
                "row length {row} is not a multiple of the {} block size {bv}",
                ggml_type.name()
            ),
        )));
    }
    let n_bytes = (n_elements / bv as u64)
        .checked_mul(bb as u64)
        .ok_or_else(|| named(Error::malformed(KIND, "data size overflows")))?;
    Ok(TensorInfo {
        name,
        dims,
        ggml_type,
        offset,
        n_bytes,
    })
}

/// Which int tensor plane a GGUF tensor is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Plane {
    Codes,
    Scales,
    Zeros,
    /// The canonical blocks of a format GGUF has no type for (other than int), as I8.
    Blocks,
}

impl Plane {
    fn suffix(self) -> &'static str {
        match self {
            Plane::Codes => ".codes",
            Plane::Scales => ".scales",
            Plane::Zeros => ".zeros",
            Plane::Blocks => ".blocks",
        }
    }
}

fn build_model<S: GgufSource>(h: GgufHeader, src: &mut S, path: &Path) -> Result<Model> {
    let mut r = Data { src, path, h: &h };
    let by_name: HashMap<&str, usize> = h
        .tensors
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.as_str(), i))
        .collect();

    // Formats declared in metadata, and which tensor indices are int planes of whom.
    let mut formats: HashMap<&str, Format> = HashMap::new();
    let mut plane_owner: HashMap<usize, &str> = HashMap::new();
    for (key, value) in &h.metadata {
        let Some(name) = key.strip_prefix(FORMAT_KEY_PREFIX) else {
            continue;
        };
        let fname = value.as_str().ok_or_else(|| {
            Error::malformed(
                KIND,
                format!("metadata '{key}' must be a string, found {value:?}"),
            )
        })?;
        let format: Format = fname.parse()?;
        match format {
            Format::Int(f) => {
                let mut planes = vec![Plane::Codes, Plane::Scales];
                if f.asym {
                    planes.push(Plane::Zeros);
                }
                for p in planes {
                    let pname = format!("{name}{}", p.suffix());
                    let &i = by_name.get(pname.as_str()).ok_or_else(|| {
                        Error::malformed(
                            KIND,
                            format!("'{key}' = {fname}, but tensor '{pname}' is missing"),
                        )
                    })?;
                    plane_owner.insert(i, name);
                }
            }
            f if f.codec().ggml_type().is_none() => {
                let pname = format!("{name}{}", Plane::Blocks.suffix());
                let &i = by_name.get(pname.as_str()).ok_or_else(|| {
                    Error::malformed(
                        KIND,
                        format!("'{key}' = {fname}, but tensor '{pname}' is missing"),
                    )
                })?;
                plane_owner.insert(i, name);
            }
            _ => {
                if !by_name.contains_key(name) {
                    return Err(Error::malformed(
                        KIND,
                        format!("'{key}' = {fname}, but tensor '{name}' is missing"),
                    ));
                }
            }
        }
        formats.insert(name, format);
    }

    let mut tensors: Vec<(String, StoredTensor)> = Vec::with_capacity(h.tensors.len());
    let mut done: HashSet<&str> = HashSet::new();
    for (i, info) in h.tensors.iter().enumerate() {
        if let Some(&owner) = plane_owner.get(&i) {
            if !done.insert(owner) {
                continue;
            }
            let format = formats[owner];
            let t = ctx(
                match format {
                    Format::Int(f) => read_int(&mut r, &by_name, owner, f),
                    f => read_blocks(&mut r, &by_name, owner, f),
                },
                || format!("tensor '{owner}' ({format})"),
            )?;
            tensors.push((owner.to_string(), StoredTensor::Quantized(t)));
            continue;
        }
        let format = formats.get(info.name.as_str()).copied();
        let t = ctx(read_plain(&mut r, i, info, format), || {
            format!("tensor '{}'", info.name)
        })?;
        tensors.push((info.name.clone(), t));
    }
    let index = tensors
        .iter()
        .enumerate()
        .map(|(i, (n, _))| (n.clone(), i))
        .collect::<HashMap<_, _>>();
    if index.len() != tensors.len() {
        return Err(Error::malformed(
            KIND,
            "an int tensor's name is also the name of another tensor",
        ));
    }
    Ok(Model {
        version: h.version,
        alignment: h.alignment,
        metadata: h.metadata,
        tensors,
        index,
    })
}

/// (rows, k) of a tensor stored as rows of `dims[0]`.
fn rows_k(info: &TensorInfo) -> Result<(usize, usize)> {
    let k = info.dims.first().copied().unwrap_or(1);
    let rows = info
        .dims
        .iter()
        .skip(1)
        .try_fold(1u64, |a, &d| a.checked_mul(d));
    match (rows.map(usize::try_from), usize::try_from(k)) {
        (Some(Ok(r)), Ok(k)) => Ok((r, k)),
        _ => Err(Error::malformed(KIND, "too large for this platform")),
    }
}

fn read_plain<S: GgufSource>(
    r: &mut Data<'_, S>,
    i: usize,
    info: &TensorInfo,
    format: Option<Format>,
) -> Result<StoredTensor> {
    let ty = info.ggml_type;
    let quant_format = match (format, ty) {
        (Some(f), _) => {
            // Formats without a GGUF type are stored as planes (`<name>.codes`, ...), so a
            // plain tensor under the name itself contradicts the metadata.
            let want = f.codec().ggml_type().ok_or_else(|| {
                Error::malformed(
                    KIND,
                    format!(
                        "metadata says format {f}, which is stored as planes, but there is a \
                         plain {} tensor of that name",
                        ty.name()
                    ),
                )
            })?;
            if want != ty {
                return Err(Error::malformed(
                    KIND,
                    format!(
                        "metadata says format {f}, but the tensor has type {}",
                        ty.name()
                    ),
                ));
            }
            Some(f)
        }
        (None, t) => Format::from_ggml_type(t).filter(|f| f.is_quantized()),
    };
    let bytes = r.read(i)?;
    if let Some(f) = quant_format {
        let (rows, k) = rows_k(info)?;
        let q = QuantizedTensor::from_bytes(f, rows, k, bytes.into_owned())
            .map_err(|e| Error::malformed(KIND, e.to_string()))?;
        return Ok(StoredTensor::Quantized(q));
    }
    let data = match ty {
        GgmlType::F32 => super::f32_from_le(&bytes),
        GgmlType::F16 => super::f16_from_le(&bytes),
        GgmlType::BF16 => super::bf16_from_le(&bytes),
        GgmlType::I8 => bytes.iter().map(|&b| b as i8 as f32).collect(),
        GgmlType::I16 => bytes
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32)
            .collect(),
        GgmlType::I32 => {
            let mut out = Vec::with_capacity(bytes.len() / 4);
            for b in bytes.chunks_exact(4) {
                let v = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                if v.unsigned_abs() > 1 << 24 {
                    return Err(Error::UnsupportedFormat(format!(
                        "GGUF I32 tensor '{}' holds {v}, which f32 cannot represent exactly",
                        info.name
                    )));
                }
                out.push(v as f32);
            }
            out
        }
        other => {
            return Err(Error::UnsupportedFormat(format!(
                "GGUF type {} of tensor '{}' is not supported",
                other.name(),
                info.name
            )))
        }
    };
    Ok(StoredTensor::Float {
        shape: info.shape(),
        data,
    })
}

/// A format without a GGUF type, stored as its canonical blocks in an I8 tensor
/// `<name>.blocks` with dims [row bytes, rows].
fn read_blocks<S: GgufSource>(
    r: &mut Data<'_, S>,
    by_name: &HashMap<&str, usize>,
    name: &str,
    f: Format,
) -> Result<QuantizedTensor> {
    let pname = format!("{name}{}", Plane::Blocks.suffix());
    let i = *by_name
        .get(pname.as_str())
        .ok_or_else(|| Error::malformed(KIND, format!("plane '{pname}' is missing")))?;
    let t = &r.h.tensors[i];
    if t.ggml_type != GgmlType::I8 || t.dims.len() != 2 {
        return Err(Error::malformed(
            KIND,
            format!(
                "plane '{pname}' must be a 2-D I8 tensor, found {} with dims {:?}",
                t.ggml_type.name(),
                t.dims
            ),
        ));
    }
    let c = f.codec();
    let (row_bytes, rows) = (t.dims[0], t.dims[1]);
    if row_bytes % c.block_bytes() as u64 != 0 {
        return Err(Error::malformed(
            KIND,
            format!("{row_bytes} bytes per row is not a whole number of {f} blocks"),
        ));
    }
    let k = row_bytes / c.block_bytes() as u64 * c.block_values() as u64;
    let (rows, k) = match (usize::try_from(rows), usize::try_from(k)) {
        (Ok(r), Ok(k)) => (r, k),
        _ => return Err(Error::malformed(KIND, "too large for this platform")),
    };
    let bytes = r.read(i)?.into_owned();
    QuantizedTensor::from_bytes(f, rows, k, bytes)
        .map_err(|e| Error::malformed(KIND, e.to_string()))
}

fn read_int<S: GgufSource>(
    r: &mut Data<'_, S>,
    by_name: &HashMap<&str, usize>,
    name: &str,
    f: IntFormat,
) -> Result<QuantizedTensor> {
    let h = r.h;
    let plane = |p: Plane, ty: GgmlType| -> Result<(usize, u64, u64)> {
        let pname = format!("{name}{}", p.suffix());
        let i = *by_name
            .get(pname.as_str())
            .ok_or_else(|| Error::malformed(KIND, format!("plane '{pname}' is missing")))?;
        let t = &h.tensors[i];
        if t.ggml_type != ty || t.dims.len() != 2 {
            return Err(Error::malformed(
                KIND,
                format!(
                    "plane '{pname}' must be a 2-D {} tensor, found {} with dims {:?}",
                    ty.name(),
                    t.ggml_type.name(),
                    t.dims
                ),
            ));
        }
        Ok((i, t.dims[0], t.dims[1]))
    };
    let (ci, code_bytes, rows) = plane(Plane::Codes, GgmlType::I8)?;
    let (si, groups, srows) = plane(Plane::Scales, GgmlType::F16)?;
    let zeros = if f.asym {
        Some(plane(Plane::Zeros, GgmlType::I8)?)
    } else {
        None
    };
    let bad = |what: String| Error::malformed(KIND, what);
    let k = code_bytes
        .checked_mul(8)
        .map(|b| b / f.bits as u64)
        .ok_or_else(|| bad("code plane too large".into()))?;
    if code_bytes * 8 % f.bits as u64 != 0 || groups.checked_mul(f.group as u64) != Some(k) {
        return Err(bad(format!(
            "{code_bytes} code bytes per row and {groups} scales per row do not fit {f}"
        )));
    }
    if srows != rows || zeros.is_some_and(|(_, g, zr)| zr != rows || g != groups) {
        return Err(bad("planes disagree on the number of rows or groups".into()));
    }
    let (rows, k) = (rows as usize, k as usize);
    let codes = r.read(ci)?.into_owned();
    let scales = r
        .read(si)?
        .chunks_exact(2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .collect();
    let zeros = match zeros {
        Some((zi, ..)) => Some(r.read(zi)?.into_owned()),
        None => None,
    };
    f.from_planes(
        rows,
        k,
        &IntPlanes {
            codes,
            scales,
            zeros,
        },
    )
    .map_err(|e| bad(e.to_string()))
}

// ---------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------

/// Where an output tensor's bytes come from.
enum Payload<'a> {
    Bytes(&'a [u8]),
    Floats(&'a [f32]),
    Plane(usize, IntFormat, Plane),
}

struct OutTensor<'a> {
    name: String,
    ty: GgmlType,
    dims: Vec<u64>,
    n_bytes: u64,
    payload: Payload<'a>,
}

/// Write a GGUF v3 file: `metadata` entries in order, then `general.alignment` (32) and
/// `wgquant.version` unless given, then `wgquant.format.<name>` for each quantized tensor;
/// tensors as described in the [module docs](self), each padded to the alignment.
///
/// Caller entries with the `wgquant.format.` prefix are dropped (they are derived from the
/// tensors), so a [`Model`]'s metadata can be passed back in. Tensor names must be unique
/// and at most [`MAX_NAME_LEN`] bytes (int tensors' names plus `.scales`), float tensors have
/// at most [`MAX_DIMS`] dimensions; a 0-d tensor is stored with dims `[1]`.
pub fn write_model(
    path: impl AsRef<Path>,
    metadata: &[(String, MetaValue)],
    tensors: &[(String, StoredTensor)],
) -> Result<()> {
    let path = path.as_ref();
    let plan = plan_model(metadata, tensors)?;
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let mut w = BufWriter::new(file);
    let result = write_planned(&mut w, &plan, tensors)
        .and_then(|()| w.flush().map_err(|e| Error::io(path, e)));
    drop(w);
    if result.is_err() {
        // Do not leave a half-written file behind.
        let _ = std::fs::remove_file(path);
    }
    result.map_err(|e| match e {
        Error::Io { source, .. } => Error::io(path, source),
        other => other,
    })
}

/// [`write_model`] into memory.
pub fn model_bytes(
    metadata: &[(String, MetaValue)],
    tensors: &[(String, StoredTensor)],
) -> Result<Vec<u8>> {
    let plan = plan_model(metadata, tensors)?;
    let mut out = Vec::new();
    write_planned(&mut out, &plan, tensors)?;
    Ok(out)
}

struct Plan<'a> {
    metadata: Vec<(String, MetaValue)>,
    tensors: Vec<OutTensor<'a>>,
    alignment: u64,
}

fn plan_model<'a>(
    metadata: &[(String, MetaValue)],
    tensors: &'a [(String, StoredTensor)],
) -> Result<Plan<'a>> {
    let invalid = |m: String| Error::InvalidArgument(m);

    let mut meta: Vec<(String, MetaValue)> = Vec::with_capacity(metadata.len() + tensors.len() + 2);
    let mut keys = HashSet::new();
    for (k, v) in metadata {
        if k.starts_with(FORMAT_KEY_PREFIX) {
            continue;
        }
        if !keys.insert(k.as_str()) {
            return Err(invalid(format!("metadata key '{k}' appears twice")));
        }
        check_meta(v, 0).map_err(|m| invalid(format!("metadata '{k}': {m}")))?;
        meta.push((k.clone(), v.clone()));
    }
    let alignment = match metadata.iter().find(|(k, _)| k == ALIGNMENT_KEY) {
        None => {
            meta.push((ALIGNMENT_KEY.into(), MetaValue::U32(DEFAULT_ALIGNMENT)));
            DEFAULT_ALIGNMENT as u64
        }
        Some((_, MetaValue::U32(a))) if a.is_power_of_two() => *a as u64,
        Some((_, v)) => {
            return Err(invalid(format!(
                "{ALIGNMENT_KEY} must be a u32 power of two, got {v:?}"
            )))
        }
    };
    if !keys.contains(VERSION_KEY) {
        meta.push((VERSION_KEY.into(), env!("CARGO_PKG_VERSION").into()));
    }

    let mut out = Vec::with_capacity(tensors.len());
    for (ti, (name, t)) in tensors.iter().enumerate() {
        match t {
            StoredTensor::Float { shape, data } => {
                super::check_shape(shape, data.len())
                    .map_err(|e| super::shape_context(e, &format!("tensor '{name}'")))?;
                if shape.len() > MAX_DIMS {
                    return Err(Error::Shape(format!(
                        "tensor '{name}' has {} dimensions; GGUF allows at most {MAX_DIMS}",
                        shape.len()
                    )));
                }
                let mut dims: Vec<u64> = shape.iter().rev().map(|&d| d as u64).collect();
                if dims.is_empty() {
                    dims.push(1);
                }
                out.push(OutTensor {
                    name: name.clone(),
                    ty: GgmlType::F32,
                    dims,
                    n_bytes: data.len() as u64 * 4,
                    payload: Payload::Floats(data),
                });
            }
            StoredTensor::Quantized(q) => {
                let format = q.format();
                meta.push((
                    format!("{FORMAT_KEY_PREFIX}{name}"),
                    MetaValue::String(format.to_string()),
                ));
                let (rows, k) = (q.rows() as u64, q.k() as u64);
                let ty = match (format.codec().ggml_type(), format) {
                    (Some(t), _) => t,
                    (None, Format::Int(f)) => {
                        let groups = k / f.group as u64;
                        let mut planes = vec![
                            (Plane::Codes, GgmlType::I8, k * f.bits as u64 / 8),
                            (Plane::Scales, GgmlType::F16, groups),
                        ];
                        if f.asym {
                            planes.push((Plane::Zeros, GgmlType::I8, groups));
                        }
                        for (p, ty, per_row) in planes {
                            out.push(OutTensor {
                                name: format!("{name}{}", p.suffix()),
                                ty,
                                dims: vec![per_row, rows],
                                n_bytes: per_row * rows * ty.block_layout().1 as u64,
                                payload: Payload::Plane(ti, f, p),
                            });
                        }
                        continue;
                    }
                    (None, _) => {
                        // From the format, not bytes / rows: a tensor may have no rows.
                        let row_bytes = format.row_bytes(q.k()) as u64;
                        out.push(OutTensor {
                            name: format!("{name}{}", Plane::Blocks.suffix()),
                            ty: GgmlType::I8,
                            dims: vec![row_bytes, rows],
                            n_bytes: q.bytes().len() as u64,
                            payload: Payload::Bytes(q.bytes()),
                        });
                        continue;
                    }
                };
                out.push(OutTensor {
                    name: name.clone(),
                    ty,
                    dims: vec![k, rows],
                    n_bytes: q.bytes().len() as u64,
                    payload: Payload::Bytes(q.bytes()),
                });
            }
        }
    }
    let mut names = HashSet::new();
    for t in &out {
        if t.name.len() > MAX_NAME_LEN {
            return Err(invalid(format!(
                "tensor name '{}' is {} bytes; GGUF readers such as llama.cpp accept at most \
                 {MAX_NAME_LEN}",
                t.name,
                t.name.len()
            )));
        }
        if !names.insert(t.name.as_str()) {
            return Err(invalid(format!(
                "tensor name '{}' appears twice (int tensors also use <name>.codes, \
                 <name>.scales and <name>.zeros)",
                t.name
            )));
        }
    }
    Ok(Plan {
        metadata: meta,
        tensors: out,
        alignment,
    })
}

/// Check that arrays hold values of their declared type.
fn check_meta(v: &MetaValue, depth: usize) -> std::result::Result<(), String> {
    if let MetaValue::Array(ty, items) = v {
        if depth >= MAX_ARRAY_DEPTH {
            return Err(format!("arrays nested deeper than {MAX_ARRAY_DEPTH}"));
        }
        for item in items {
            if item.meta_type() != *ty {
                return Err(format!(
                    "array of {ty:?} holds a {:?} value",
                    item.meta_type()
                ));
            }
            check_meta(item, depth + 1)?;
        }
    }
    Ok(())
}

fn write_planned<W: Write>(
    w: &mut W,
    plan: &Plan<'_>,
    tensors: &[(String, StoredTensor)],
) -> Result<()> {
    let mut w = Counting { w, pos: 0 };
    w.put(MAGIC)?;
    w.put(&VERSION.to_le_bytes())?;
    w.put(&(plan.tensors.len() as u64).to_le_bytes())?;
    w.put(&(plan.metadata.len() as u64).to_le_bytes())?;
    let mut buf = Vec::new();
    for (k, v) in &plan.metadata {
        buf.clear();
        buf.extend_from_slice(&encode_str(k));
        buf.extend_from_slice(&v.meta_type().id().to_le_bytes());
        encode_value(v, &mut buf);
        w.put(&buf)?;
    }
    let a = plan.alignment;
    let mut offset = 0u64;
    for t in &plan.tensors {
        w.put(&encode_str(&t.name))?;
        w.put(&(t.dims.len() as u32).to_le_bytes())?;
        for d in &t.dims {
            w.put(&d.to_le_bytes())?;
        }
        w.put(&(t.ty as u32).to_le_bytes())?;
        w.put(&offset.to_le_bytes())?;
        offset += t.n_bytes.next_multiple_of(a);
    }
    // The data section starts aligned. A file without tensors has no data section and
    // ends here (as gguf-py's vocab-only files do), so that a large alignment copied from
    // an input cannot make the writer pad an empty file to gigabytes.
    if !plan.tensors.is_empty() {
        w.pad(a)?;
    }

    // The planes of the int tensor being written (they are consecutive).
    let mut cached: Option<(usize, IntPlanes)> = None;
    for t in &plan.tensors {
        let written = match t.payload {
            Payload::Bytes(b) => {
                w.put(b)?;
                b.len() as u64
            }
            Payload::Floats(f) => {
                let b = super::f32_le_bytes(f);
                w.put(&b)?;
                b.len() as u64
            }
            Payload::Plane(ti, f, p) => {
                if cached.as_ref().is_none_or(|(i, _)| *i != ti) {
                    let StoredTensor::Quantized(q) = &tensors[ti].1 else {
                        unreachable!("planes come from quantized tensors");
                    };
                    cached = Some((ti, f.to_planes(q)));
                }
                let planes = &cached.as_ref().expect("just set").1;
                let bytes: std::borrow::Cow<[u8]> = match p {
                    Plane::Codes => (&planes.codes[..]).into(),
                    Plane::Scales => planes
                        .scales
                        .iter()
                        .flat_map(|s| s.to_le_bytes())
                        .collect::<Vec<u8>>()
                        .into(),
                    Plane::Zeros => planes.zeros.as_deref().unwrap_or(&[]).into(),
                    Plane::Blocks => unreachable!("block planes are written as bytes"),
                };
                w.put(&bytes)?;
                bytes.len() as u64
            }
        };
        if written != t.n_bytes {
            return Err(Error::Shape(format!(
                "tensor '{}' produced {written} bytes, expected {}",
                t.name, t.n_bytes
            )));
        }
        w.pad(a)?;
    }
    Ok(())
}

/// A writer that counts the bytes written.
struct Counting<'a, W> {
    w: &'a mut W,
    pos: u64,
}

impl<W: Write> Counting<'_, W> {
    fn put(&mut self, b: &[u8]) -> Result<()> {
        self.pos += b.len() as u64;
        self.w.write_all(b).map_err(|e| Error::io("<output>", e))
    }

    /// Zero bytes up to the next multiple of `a` (from a small buffer: `a` may be large).
    fn pad(&mut self, a: u64) -> Result<()> {
        const ZEROS: [u8; 4096] = [0; 4096];
        let mut pad = self.pos.next_multiple_of(a) - self.pos;
        while pad > 0 {
            let n = pad.min(ZEROS.len() as u64);
            self.put(&ZEROS[..n as usize])?;
            pad -= n;
        }
        Ok(())
    }
}

fn encode_str(s: &str) -> Vec<u8> {
    let mut b = Vec::with_capacity(8 + s.len());
    b.extend_from_slice(&(s.len() as u64).to_le_bytes());
    b.extend_from_slice(s.as_bytes());
    b
}

/// The bytes of a value, without its type id.
fn encode_value(v: &MetaValue, out: &mut Vec<u8>) {
    match v {
        MetaValue::U8(x) => out.push(*x),
        MetaValue::I8(x) => out.push(*x as u8),
        MetaValue::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::Bool(x) => out.push(*x as u8),
        MetaValue::String(s) => out.extend_from_slice(&encode_str(s)),
        MetaValue::Array(ty, items) => {
            out.extend_from_slice(&ty.id().to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for item in items {
                encode_value(item, out);
            }
        }
        MetaValue::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
    }
}
