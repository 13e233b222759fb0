//! `.npy` arrays: read float32 / float64 / float16 (little-endian, C order) as f32, write f32.
//!
//! Layout: magic `\x93NUMPY`, major and minor version bytes, header length (u16 for version
//! 1.0, u32 for 2.0 and 3.0), a Python dict literal
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }` padded with spaces and
//! ending in `\n`, then the raw data.

use super::{f16_from_le, f32_from_le, f32_le_bytes, shape_elems, Array};
use crate::error::{Error, Result};
use std::io::Write;
use std::path::Path;

const KIND: &str = ".npy";
const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Little-endian bytes of one dtype to f32 values.
type Convert = fn(&[u8]) -> Vec<f32>;

/// Read a `.npy` file of `<f4`, `<f8` or `<f2` values in C order into an f32 [`Array`].
pub fn read_npy(path: impl AsRef<Path>) -> Result<Array> {
    let path = path.as_ref();
    let bytes = super::read_file(path)?;
    read_npy_bytes(&bytes).map_err(|e| e.at_path(path))
}

/// Parse the bytes of a `.npy` file; see [`read_npy`].
pub fn read_npy_bytes(bytes: &[u8]) -> Result<Array> {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(Error::malformed(
            KIND,
            "missing the \\x93NUMPY magic at the start: not a .npy file",
        ));
    }
    let (major, minor) = match bytes.get(6..8) {
        Some(v) => (v[0], v[1]),
        None => return Err(Error::malformed(KIND, "file ends inside the version bytes")),
    };
    let (len_bytes, header_start) = match major {
        1 => (2usize, 10usize),
        2 | 3 => (4, 12),
        _ => {
            return Err(Error::UnsupportedFormat(format!(
                ".npy version {major}.{minor} (wgquant reads versions 1.0, 2.0 and 3.0)"
            )))
        }
    };
    let header_len = match bytes.get(8..8 + len_bytes) {
        Some(b) if len_bytes == 2 => u16::from_le_bytes([b[0], b[1]]) as usize,
        Some(b) => u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize,
        None => return Err(Error::malformed(KIND, "file ends inside the header length")),
    };
    let header_end = header_start
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| {
            Error::malformed(
                KIND,
                format!(
                    "header claims {header_len} bytes but the file has only {} after the preamble",
                    bytes.len().saturating_sub(header_start)
                ),
            )
        })?;
    let raw = &bytes[header_start..header_end];
    let header = if major == 3 {
        std::str::from_utf8(raw)
            .map_err(|_| Error::malformed(KIND, "header is not valid UTF-8"))?
            .to_string()
    } else {
        // Versions 1 and 2 use latin-1; every byte maps to the same code point.
        raw.iter().map(|&b| b as char).collect()
    };
    let h = parse_header(&header)?;

    let (item, convert): (usize, Convert) = match h.descr.as_str() {
        "<f4" => (4, f32_from_le),
        "<f8" => (8, f64_from_le),
        "<f2" => (2, f16_from_le),
        d => {
            let hint = if d.starts_with('>') {
                " (big-endian data: convert it with arr.astype('<f4'))"
            } else {
                ""
            };
            return Err(Error::UnsupportedFormat(format!(
                ".npy dtype '{d}'{hint}; wgquant reads little-endian float32 ('<f4'), \
                 float64 ('<f8') or float16 ('<f2')"
            )));
        }
    };
    if h.fortran_order {
        return Err(Error::UnsupportedFormat(
            ".npy array in Fortran (column-major) order; save it in C order \
             (np.save(path, np.ascontiguousarray(arr)))"
                .into(),
        ));
    }
    let elems = shape_elems(&h.shape)
        .map_err(|_| Error::malformed(KIND, format!("shape {:?} overflows", h.shape)))?;
    let data = &bytes[header_end..];
    let want = elems
        .checked_mul(item)
        .ok_or_else(|| Error::malformed(KIND, format!("shape {:?} overflows", h.shape)))?;
    if data.len() != want {
        return Err(Error::malformed(
            KIND,
            format!(
                "shape {:?} of '{}' needs {want} data bytes, the file holds {}{}",
                h.shape,
                h.descr,
                data.len(),
                if data.len() < want {
                    " (truncated)"
                } else {
                    ""
                }
            ),
        ));
    }
    Ok(Array {
        shape: h.shape,
        data: convert(data),
    })
}

/// Write f32 values of the given shape (numpy order, C order) as a `.npy` file (`<f4`).
pub fn write_npy(path: impl AsRef<Path>, shape: &[usize], data: &[f32]) -> Result<()> {
    let path = path.as_ref();
    let header = npy_header(shape, data.len())?;
    let write = || -> std::io::Result<()> {
        let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
        f.write_all(&header)?;
        f.write_all(&f32_le_bytes(data))?;
        f.flush()
    };
    write().map_err(|e| Error::io(path, e))
}

/// The bytes of a `.npy` file holding `data` with `shape` (`<f4`, C order).
pub fn npy_bytes(shape: &[usize], data: &[f32]) -> Result<Vec<u8>> {
    let mut out = npy_header(shape, data.len())?;
    out.extend_from_slice(&f32_le_bytes(data));
    Ok(out)
}

/// Magic, version, length and padded dict for an f32 array.
fn npy_header(shape: &[usize], len: usize) -> Result<Vec<u8>> {
    super::check_shape(shape, len)?;
    let dims = match shape {
        [] => "()".to_string(),
        [d] => format!("({d},)"),
        _ => {
            let s: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
            format!("({})", s.join(", "))
        }
    };
    let mut dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {dims}, }}");
    // Version 1.0 has a u16 length; larger headers need 2.0. Pad to a multiple of 64.
    let (version, pre) = if dict.len() + 1 + 10 + 63 <= u16::MAX as usize {
        (1u8, 10usize)
    } else {
        (2u8, 12usize)
    };
    let total = (pre + dict.len() + 1).div_ceil(64) * 64;
    while pre + dict.len() + 1 < total {
        dict.push(' ');
    }
    dict.push('\n');
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[version, 0]);
    if version == 1 {
        out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    } else {
        let n = u32::try_from(dict.len())
            .map_err(|_| Error::Shape(format!("shape {shape:?} is too long for .npy")))?;
        out.extend_from_slice(&n.to_le_bytes());
    }
    out.extend_from_slice(dict.as_bytes());
    Ok(out)
}

fn f64_from_le(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(8)
        .map(|b| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            f64::from_le_bytes(a) as f32
        })
        .collect()
}

/// The fields of a `.npy` header dict.
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// A value of the Python literal subset `.npy` headers use.
enum Lit {
    Str(String),
    Bool(bool),
    Int(usize),
    Seq(Vec<Lit>),
    Dict(Vec<(Lit, Lit)>),
}

fn parse_header(s: &str) -> Result<Header> {
    let mut p = Parser {
        s: s.as_bytes(),
        i: 0,
        depth: 0,
    };
    let v = p.value()?;
    p.ws();
    if p.i != p.s.len() {
        return Err(bad_header(format!(
            "unexpected text after the header dict at byte {}",
            p.i
        )));
    }
    let Lit::Dict(items) = v else {
        return Err(bad_header("header is not a dict".into()));
    };
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    for (k, v) in items {
        let Lit::Str(k) = k else {
            return Err(bad_header("header dict has a non-string key".into()));
        };
        match (k.as_str(), v) {
            ("descr", Lit::Str(d)) => descr = Some(d),
            ("descr", _) => {
                return Err(Error::UnsupportedFormat(
                    ".npy structured dtype; wgquant reads plain float arrays".into(),
                ))
            }
            ("fortran_order", Lit::Bool(b)) => fortran = Some(b),
            ("shape", Lit::Seq(dims)) => {
                let mut out = Vec::with_capacity(dims.len());
                for d in dims {
                    match d {
                        Lit::Int(n) => out.push(n),
                        _ => return Err(bad_header("shape holds a non-integer".into())),
                    }
                }
                shape = Some(out);
            }
            ("fortran_order" | "shape", _) => {
                return Err(bad_header(format!("'{k}' has the wrong type")))
            }
            _ => {}
        }
    }
    match (descr, fortran, shape) {
        (Some(descr), Some(fortran_order), Some(shape)) => Ok(Header {
            descr,
            fortran_order,
            shape,
        }),
        _ => Err(bad_header(
            "header must have 'descr', 'fortran_order' and 'shape'".into(),
        )),
    }
}

fn bad_header(reason: String) -> Error {
    Error::malformed(KIND, format!("bad header: {reason}"))
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    depth: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn expect(&mut self, c: u8) -> Result<()> {
        self.ws();
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(bad_header(format!(
                "expected '{}' at byte {}",
                c as char, self.i
            )))
        }
    }

    fn value(&mut self) -> Result<Lit> {
        self.ws();
        self.depth += 1;
        if self.depth > 16 {
            return Err(bad_header("nested too deeply".into()));
        }
        let v = match self.peek() {
            Some(b'{') => {
                self.i += 1;
                let mut items = Vec::new();
                loop {
                    self.ws();
                    if self.peek() == Some(b'}') {
                        self.i += 1;
                        break;
                    }
                    let k = self.value()?;
                    self.expect(b':')?;
                    let v = self.value()?;
                    items.push((k, v));
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {}
                        _ => {
                            return Err(bad_header(format!(
                                "expected ',' or '}}' at byte {}",
                                self.i
                            )))
                        }
                    }
                }
                Lit::Dict(items)
            }
            Some(open @ (b'(' | b'[')) => {
                let close = if open == b'(' { b')' } else { b']' };
                self.i += 1;
                let mut items = Vec::new();
                loop {
                    self.ws();
                    if self.peek() == Some(close) {
                        self.i += 1;
                        break;
                    }
                    items.push(self.value()?);
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(c) if c == close => {}
                        _ => {
                            return Err(bad_header(format!(
                                "expected ',' or '{}' at byte {}",
                                close as char, self.i
                            )))
                        }
                    }
                }
                Lit::Seq(items)
            }
            Some(q @ (b'\'' | b'"')) => {
                self.i += 1;
                let start = self.i;
                while self.peek().is_some_and(|c| c != q) {
                    if self.peek() == Some(b'\\') {
                        return Err(bad_header("escapes in strings are not supported".into()));
                    }
                    self.i += 1;
                }
                if self.peek().is_none() {
                    return Err(bad_header("unterminated string".into()));
                }
                let text = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                self.i += 1;
                Lit::Str(text)
            }
            Some(c) if c.is_ascii_digit() => {
                let start = self.i;
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.i += 1;
                }
                let digits = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
                let n: usize = digits.parse().map_err(|_| {
                    bad_header(format!("dimension {digits} does not fit in memory"))
                })?;
                // Python 2 wrote long integers with an L suffix.
                if self.peek() == Some(b'L') {
                    self.i += 1;
                }
                Lit::Int(n)
            }
            Some(_) if self.s[self.i..].starts_with(b"True") => {
                self.i += 4;
                Lit::Bool(true)
            }
            Some(_) if self.s[self.i..].starts_with(b"False") => {
                self.i += 5;
                Lit::Bool(false)
            }
            Some(b'-') => return Err(bad_header(format!("negative number at byte {}", self.i))),
            Some(c) => {
                return Err(bad_header(format!(
                    "unexpected '{}' at byte {}",
                    (c as char).escape_default(),
                    self.i
                )))
            }
            None => return Err(bad_header("header ends early".into())),
        };
        self.depth -= 1;
        Ok(v)
    }
}
