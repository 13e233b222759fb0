//! File formats: .npy, safetensors and GGUF round trips, and hostile input (truncation,
//! corrupted counts and sizes, unknown types, garbage) that must give typed errors, never
//! panics or huge allocations.

mod common;

use common::temp::TempDir;
use std::path::PathBuf;
use wgquant::format::IntFormat;
use wgquant::io::gguf::{self, GgufFile, GgufReader, MetaType, MetaValue, StoredTensor};
use wgquant::io::{npy, safetensors as st, Array};
use wgquant::rng::Rng;
use wgquant::{Error, Format, QuantizedTensor};

type Meta = Vec<(String, MetaValue)>;
type Tensors = Vec<(String, StoredTensor)>;
type ErrorCheck = fn(&Error) -> bool;

fn is_malformed(e: &Error) -> bool {
    matches!(e, Error::Malformed { .. })
}

// ---------------------------------------------------------------------------------------
// .npy
// ---------------------------------------------------------------------------------------

/// A .npy file with the given header dict and data, padded like numpy pads.
fn npy_file(major: u8, dict: &str, data: &[u8]) -> Vec<u8> {
    let pre = if major == 1 { 10 } else { 12 };
    let mut h = dict.to_string();
    while !(pre + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    let mut out = b"\x93NUMPY".to_vec();
    out.extend_from_slice(&[major, 0]);
    if major == 1 {
        out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(h.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out
}

#[test]
fn npy_round_trip() {
    let dir = TempDir::new("io-npy");
    let mut rng = Rng::new(1);
    for shape in [
        vec![],
        vec![5],
        vec![3, 4],
        vec![2, 3, 4],
        vec![0, 3],
        vec![1, 1, 1, 7],
    ] {
        let n: usize = shape.iter().product();
        let data = rng.normal_vec(n);
        let p = dir.path("a.npy");
        npy::write_npy(&p, &shape, &data).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(bytes, npy::npy_bytes(&shape, &data).unwrap());
        // numpy pads the preamble + header to a multiple of 64 and ends it with '\n'.
        let hl = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + hl) % 64, 0);
        assert_eq!(bytes[10 + hl - 1], b'\n');
        let a = npy::read_npy(&p).unwrap();
        assert_eq!(a, Array { shape, data });
    }
    // Shape and data disagree.
    assert!(matches!(
        npy::write_npy(dir.path("b.npy"), &[2, 2], &[1.0; 3]),
        Err(Error::Shape(_))
    ));
}

#[test]
fn npy_reads_f8_f2_and_all_versions() {
    let vals = [1.5f64, -2.25, 1e-3, 65504.0];
    let f8: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    let f2: Vec<u8> = vals
        .iter()
        .flat_map(|&v| half::f16::from_f64(v).to_le_bytes())
        .collect();
    let f4: Vec<u8> = vals
        .iter()
        .flat_map(|&v| (v as f32).to_le_bytes())
        .collect();
    let want: Vec<f32> = vals.iter().map(|&v| v as f32).collect();
    for major in [1, 2, 3] {
        let a = npy::read_npy_bytes(&npy_file(
            major,
            "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }",
            &f8,
        ))
        .unwrap();
        assert_eq!(a.shape, vec![2, 2]);
        assert_eq!(a.data, want);
    }
    let a = npy::read_npy_bytes(&npy_file(
        1,
        "{'descr': '<f2', 'fortran_order': False, 'shape': (4,), }",
        &f2,
    ))
    .unwrap();
    let want16: Vec<f32> = vals
        .iter()
        .map(|&v| half::f16::from_f64(v).to_f32())
        .collect();
    assert_eq!(a.data, want16);
    // Key order, double quotes, list shape, Python 2 long suffix, no trailing comma.
    let a = npy::read_npy_bytes(&npy_file(
        1,
        "{\"shape\": [4L], \"fortran_order\": False, \"descr\": \"<f4\"}",
        &f4,
    ))
    .unwrap();
    assert_eq!((a.shape, a.data), (vec![4], want.clone()));
    // Version 3 allows UTF-8 in the header (e.g. in unknown extra keys).
    let a = npy::read_npy_bytes(&npy_file(
        3,
        "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), 'note': 'é', }",
        &f4,
    ))
    .unwrap();
    assert_eq!(a.data, want);
}

#[test]
fn npy_bad_input() {
    let good = npy::npy_bytes(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
    // Every truncation is an error.
    for n in 0..good.len() {
        let e = npy::read_npy_bytes(&good[..n]).unwrap_err();
        assert!(is_malformed(&e), "prefix {n}: {e}");
    }
    // Trailing data is an error too.
    let mut long = good.clone();
    long.extend_from_slice(&[0; 4]);
    assert!(is_malformed(&npy::read_npy_bytes(&long).unwrap_err()));

    let mut bad_magic = good.clone();
    bad_magic[1] = b'X';
    let e = npy::read_npy_bytes(&bad_magic).unwrap_err();
    assert!(e.to_string().contains("magic"), "{e}");

    let mut bad_version = good.clone();
    bad_version[6] = 9;
    assert!(matches!(
        npy::read_npy_bytes(&bad_version),
        Err(Error::UnsupportedFormat(_))
    ));

    let data = [0u8; 24];
    let fortran = npy_file(
        1,
        "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }",
        &data,
    );
    let e = npy::read_npy_bytes(&fortran).unwrap_err();
    assert!(
        matches!(e, Error::UnsupportedFormat(_)) && e.to_string().contains("Fortran"),
        "{e}"
    );

    for dtype in ["<i4", ">f4", "|u1", "<c8", "<U3"] {
        let f = npy_file(
            1,
            &format!("{{'descr': '{dtype}', 'fortran_order': False, 'shape': (2, 3), }}"),
            &data,
        );
        let e = npy::read_npy_bytes(&f).unwrap_err();
        assert!(
            matches!(e, Error::UnsupportedFormat(_)) && e.to_string().contains(dtype),
            "{dtype}: {e}"
        );
    }
    let structured = npy_file(
        1,
        "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (6,), }",
        &data,
    );
    assert!(npy::read_npy_bytes(&structured).is_err());

    // Absurd shapes: overflowing products, products that do not match the data.
    for shape in [
        "(18446744073709551615, 18446744073709551615)",
        "(4611686018427387904,)",
        "(99999999999999999999999999,)",
        "(1000000, 1000000)",
        "(7,)",
        "(-6,)",
        "(2, 'x')",
    ] {
        let f = npy_file(
            1,
            &format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}"),
            &data,
        );
        let e = npy::read_npy_bytes(&f).unwrap_err();
        assert!(is_malformed(&e), "{shape}: {e}");
    }
    // Header length beyond the file.
    let mut huge_header = npy_file(2, "{}", &[]);
    huge_header[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(is_malformed(
        &npy::read_npy_bytes(&huge_header).unwrap_err()
    ));
    // Broken dicts.
    for dict in [
        "",
        "{",
        "{'descr': '<f4', 'fortran_order': False}",
        "{'descr': '<f4', 'fortran_order': 0, 'shape': (6,)}",
        "{'descr': '<f4, 'fortran_order': False, 'shape': (6,)}",
        "{'descr': '<f4' 'fortran_order': False, 'shape': (6,)}",
        "['descr']",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (6,)} extra",
        "{'a': ((((((((((((((((((((((((((1,),),),),),),),),),),),),),),),),),),),),),),),),),)}",
        "{'descr': '\\x3cf4', 'fortran_order': False, 'shape': (6,)}",
    ] {
        let f = npy_file(1, dict, &data);
        let e = npy::read_npy_bytes(&f).unwrap_err();
        assert!(is_malformed(&e), "{dict}: {e}");
    }
    // A missing file is an I/O error naming the path.
    let e = npy::read_npy("/nonexistent/wgquant/x.npy").unwrap_err();
    assert!(
        matches!(e, Error::Io { .. }) && e.to_string().contains("x.npy"),
        "{e}"
    );
}

// ---------------------------------------------------------------------------------------
// safetensors
// ---------------------------------------------------------------------------------------

/// A safetensors file written by hand: (name, dtype, shape, raw bytes), in this order.
fn safetensors_file(tensors: &[(&str, &str, &[usize], Vec<u8>)], meta: Option<&str>) -> Vec<u8> {
    let mut entries = Vec::new();
    if let Some(m) = meta {
        entries.push(format!("\"__metadata__\":{m}"));
    }
    let mut off = 0;
    let mut data = Vec::new();
    for (name, dtype, shape, bytes) in tensors {
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        entries.push(format!(
            "\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":[{}],\"data_offsets\":[{off},{}]}}",
            dims.join(","),
            off + bytes.len()
        ));
        off += bytes.len();
        data.extend_from_slice(bytes);
    }
    let header = format!("{{{}}}", entries.join(","));
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&data);
    out
}

#[test]
fn safetensors_round_trip() {
    let dir = TempDir::new("io-st");
    let mut rng = Rng::new(2);
    let tensors = vec![
        (
            "b.weight".to_string(),
            Array::new(vec![3, 8], rng.normal_vec(24)).unwrap(),
        ),
        (
            "a.bias".to_string(),
            Array::new(vec![8], rng.normal_vec(8)).unwrap(),
        ),
        (
            "c.scalar".to_string(),
            Array::new(vec![], vec![0.5]).unwrap(),
        ),
        (
            "d.empty".to_string(),
            Array::new(vec![0, 4], vec![]).unwrap(),
        ),
    ];
    let p = dir.path("m.safetensors");
    st::write_safetensors(&p, &tensors).unwrap();
    assert_eq!(
        std::fs::read(&p).unwrap(),
        st::safetensors_bytes(&tensors).unwrap()
    );
    let f = st::read_safetensors(&p).unwrap();
    assert!(f.skipped.is_empty());
    assert_eq!(f.tensors.len(), tensors.len());
    for (name, a) in &tensors {
        assert_eq!(f.tensor(name), Some(a), "{name}");
    }

    let dup = vec![tensors[0].clone(), tensors[0].clone()];
    assert!(st::write_safetensors(dir.path("dup.safetensors"), &dup).is_err());
    let bad = vec![(
        "x".to_string(),
        Array {
            shape: vec![usize::MAX, 2],
            data: vec![],
        },
    )];
    assert!(matches!(
        st::write_safetensors(dir.path("bad.safetensors"), &bad),
        Err(Error::Shape(_))
    ));
}

#[test]
fn safetensors_f16_bf16_and_skipped() {
    let vals = [1.0f32, -0.5, 3.140625, 1e-2, 100.0, -7.0];
    let f16: Vec<u8> = vals
        .iter()
        .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
        .collect();
    let bf16: Vec<u8> = vals
        .iter()
        .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
        .collect();
    let i64s: Vec<u8> = (0..3i64).flat_map(|v| v.to_le_bytes()).collect();
    let f32s: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    let file = safetensors_file(
        &[
            ("h", "F16", &[2, 3], f16),
            ("ids", "I64", &[3], i64s),
            ("b", "BF16", &[3, 2], bf16),
            ("f", "F32", &[6], f32s),
        ],
        Some("{\"format\":\"pt\"}"),
    );
    let f = st::read_safetensors_bytes(&file).unwrap();
    let names: Vec<&str> = f.tensors.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["h", "b", "f"], "file order");
    let h = f.tensor("h").unwrap();
    assert_eq!(h.shape, vec![2, 3]);
    let want16: Vec<f32> = vals
        .iter()
        .map(|&v| half::f16::from_f32(v).to_f32())
        .collect();
    assert_eq!(h.data, want16);
    let b = f.tensor("b").unwrap();
    assert_eq!(b.shape, vec![3, 2]);
    let wantb: Vec<f32> = vals
        .iter()
        .map(|&v| half::bf16::from_f32(v).to_f32())
        .collect();
    assert_eq!(b.data, wantb);
    assert_eq!(f.tensor("f").unwrap().data, vals);
    assert_eq!(f.skipped.len(), 1);
    assert_eq!(
        (
            f.skipped[0].name.as_str(),
            f.skipped[0].dtype.as_str(),
            &f.skipped[0].shape[..]
        ),
        ("ids", "I64", &[3usize][..])
    );
    assert_eq!(f.metadata.get("format").map(String::as_str), Some("pt"));

    // The same through the safetensors crate's own writer.
    use safetensors::tensor::{Dtype, TensorView};
    let raw: Vec<u8> = vals
        .iter()
        .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
        .collect();
    let view = TensorView::new(Dtype::F16, vec![6], &raw).unwrap();
    let bytes = safetensors::serialize([("x", view)], None).unwrap();
    assert_eq!(
        st::read_safetensors_bytes(&bytes).unwrap().tensors[0]
            .1
            .data,
        want16
    );
}

#[test]
fn safetensors_garbage() {
    let good = safetensors_file(&[("w", "F32", &[2], vec![0; 8])], None);
    st::read_safetensors_bytes(&good).unwrap();
    for n in 0..good.len() {
        let e = st::read_safetensors_bytes(&good[..n]).unwrap_err();
        assert!(is_malformed(&e), "prefix {n}: {e}");
    }
    let cases: Vec<Vec<u8>> = vec![
        vec![],
        u64::MAX.to_le_bytes().to_vec(),
        [&16u64.to_le_bytes()[..], b"not json at all!"].concat(),
        [&2u64.to_le_bytes()[..], b"[]"].concat(),
        safetensors_file(&[("w", "F32", &[3], vec![0; 8])], None),
        safetensors_file(&[("w", "F32", &[usize::MAX, 4], vec![0; 8])], None),
        safetensors_file(&[("w", "F99", &[2], vec![0; 8])], None),
        [&good[..], &[0u8; 3][..]].concat(),
        (0..200u32).map(|i| (i * 7919 % 251) as u8).collect(),
    ];
    for (i, c) in cases.iter().enumerate() {
        let e = st::read_safetensors_bytes(c).unwrap_err();
        assert!(is_malformed(&e), "case {i}: {e}");
    }
}

// ---------------------------------------------------------------------------------------
// GGUF
// ---------------------------------------------------------------------------------------

/// Metadata with every value type, nested and empty arrays included.
fn all_metadata() -> Vec<(String, MetaValue)> {
    use MetaValue as V;
    vec![
        ("general.name".into(), V::String("tiny ✓".into())),
        ("t.u8".into(), V::U8(200)),
        ("t.i8".into(), V::I8(-100)),
        ("t.u16".into(), V::U16(60000)),
        ("t.i16".into(), V::I16(-30000)),
        ("t.u32".into(), V::U32(4_000_000_000)),
        ("t.i32".into(), V::I32(-2_000_000_000)),
        ("t.f32".into(), V::F32(-1.25)),
        ("t.bool".into(), V::Bool(true)),
        ("t.u64".into(), V::U64(u64::MAX)),
        ("t.i64".into(), V::I64(i64::MIN)),
        ("t.f64".into(), V::F64(std::f64::consts::PI)),
        ("t.strings".into(), V::string_array(["a", "", "ü"])),
        ("t.empty".into(), V::Array(MetaType::F32, vec![])),
        (
            "t.nested".into(),
            V::Array(
                MetaType::Array,
                vec![
                    V::Array(MetaType::I32, vec![V::I32(1), V::I32(-2)]),
                    V::Array(MetaType::String, vec![V::String("x".into())]),
                    V::Array(MetaType::U8, vec![]),
                ],
            ),
        ),
        (
            "t.bools".into(),
            V::Array(MetaType::Bool, vec![V::Bool(false), V::Bool(true)]),
        ),
    ]
}

/// Every format at a row length all of them accept.
fn formats_k() -> usize {
    Format::all().iter().fold(128, |a, f| {
        if a % f.k_multiple() == 0 {
            a
        } else {
            a * f.k_multiple()
        }
    })
}

#[test]
fn gguf_round_trip_every_format() {
    let dir = TempDir::new("io-gguf-rt");
    let mut rng = Rng::new(3);
    let k = formats_k();
    let rows = 3;
    let mut tensors = vec![(
        "tok_embd.weight".to_string(),
        StoredTensor::Float {
            shape: vec![5, 8],
            data: rng.normal_vec(40),
        },
    )];
    for (i, f) in Format::all().into_iter().enumerate() {
        let w = rng.normal_vec(rows * k);
        let q = QuantizedTensor::quantize(f, &w, rows, k).unwrap();
        tensors.push((format!("blk.{i}.{f}"), StoredTensor::Quantized(q)));
    }
    tensors.push((
        "norm".to_string(),
        StoredTensor::Float {
            shape: vec![8],
            data: rng.normal_vec(8),
        },
    ));
    tensors.push((
        "cube".to_string(),
        StoredTensor::Float {
            shape: vec![2, 3, 4],
            data: rng.normal_vec(24),
        },
    ));
    let meta = all_metadata();
    let p = dir.path("m.gguf");
    gguf::write_model(&p, &meta, &tensors).unwrap();
    let bytes = std::fs::read(&p).unwrap();
    assert_eq!(bytes, gguf::model_bytes(&meta, &tensors).unwrap());

    let m = gguf::read_model(&p).unwrap();
    assert_eq!(m.version(), 3);
    assert_eq!(m.alignment(), 32);
    let names: Vec<&str> = tensors.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(m.tensor_names(), names);
    for (name, t) in &tensors {
        assert_eq!(m.tensor(name), Some(t), "{name}");
    }
    for (k, v) in &meta {
        assert_eq!(m.metadata(k), Some(v), "{k}");
    }
    assert_eq!(m.metadata("general.alignment"), Some(&MetaValue::U32(32)));
    assert!(m
        .metadata("wgquant.version")
        .and_then(|v| v.as_str())
        .is_some());
    let i = Format::all()
        .iter()
        .position(|f| f.to_string() == "int8_g64")
        .unwrap();
    assert_eq!(
        m.metadata(&format!("wgquant.format.blk.{i}.int8_g64"))
            .and_then(|v| v.as_str()),
        Some("int8_g64")
    );
    assert_eq!(read_model_bytes_ok(&bytes), m);

    // Writing the model back out gives the same file.
    let again = gguf::model_bytes(m.metadata_entries(), m.tensors()).unwrap();
    assert_eq!(again, bytes);
}

fn read_model_bytes_ok(b: &[u8]) -> gguf::Model {
    gguf::read_model_bytes(b).unwrap()
}

/// The layout other GGUF readers see: standard types, dims [k, rows], aligned offsets.
#[test]
fn gguf_layout_is_standard() {
    let mut rng = Rng::new(4);
    let (rows, k) = (2, 128);
    let w = rng.normal_vec(rows * k);
    let q = |f| StoredTensor::Quantized(QuantizedTensor::quantize(f, &w, rows, k).unwrap());
    let tensors = vec![
        ("q8".to_string(), q(Format::Q8_0)),
        ("q40".to_string(), q(Format::Q4_0)),
        ("q41".to_string(), q(Format::Q4_1)),
        ("f".to_string(), q(Format::F32)),
        (
            "i4".to_string(),
            q(Format::Int(IntFormat::new(4, 64, true))),
        ),
        (
            "i8".to_string(),
            q(Format::Int(IntFormat::new(8, 32, false))),
        ),
        (
            "v".to_string(),
            StoredTensor::Float {
                shape: vec![3, 5],
                data: vec![0.0; 15],
            },
        ),
    ];
    let bytes = gguf::model_bytes(&[], &tensors).unwrap();
    let r = GgufReader::from_bytes(&bytes).unwrap();
    let h = r.header();
    assert_eq!(h.data_offset % 32, 0);
    let got: Vec<(&str, &str, Vec<u64>)> = h
        .tensors
        .iter()
        .map(|t| (t.name.as_str(), t.ggml_type.name(), t.dims.clone()))
        .collect();
    let (r64, k64) = (rows as u64, k as u64);
    assert_eq!(
        got,
        vec![
            ("q8", "Q8_0", vec![k64, r64]),
            ("q40", "Q4_0", vec![k64, r64]),
            ("q41", "Q4_1", vec![k64, r64]),
            ("f", "F32", vec![k64, r64]),
            ("i4.codes", "I8", vec![k64 / 2, r64]),
            ("i4.scales", "F16", vec![2, r64]),
            ("i4.zeros", "I8", vec![2, r64]),
            ("i8.codes", "I8", vec![k64, r64]),
            ("i8.scales", "F16", vec![4, r64]),
            ("v", "F32", vec![5, 3]),
        ]
    );
    for t in &h.tensors {
        assert_eq!(t.offset % 32, 0, "{}", t.name);
    }
    // The Q8_0 tensor's bytes are exactly the canonical (ggml) blocks.
    let StoredTensor::Quantized(q8) = &tensors[0].1 else {
        unreachable!()
    };
    let start = (h.data_offset + h.tensors[0].offset) as usize;
    assert_eq!(&bytes[start..start + q8.bytes().len()], q8.bytes());
    // The file ends with the last tensor padded to the alignment.
    assert_eq!(bytes.len() % 32, 0);
    assert_eq!(
        h.metadata("wgquant.format.i4").unwrap().as_str(),
        Some("int4_g64_asym")
    );
}

#[test]
fn gguf_writer_rejects_bad_input() {
    let f = |shape: Vec<usize>, n| StoredTensor::Float {
        shape,
        data: vec![0.0; n],
    };
    let q = StoredTensor::Quantized(
        QuantizedTensor::quantize(Format::Int(IntFormat::new(4, 32, false)), &[0.5; 32], 1, 32)
            .unwrap(),
    );
    let long = "x".repeat(64);
    let cases: Vec<(Meta, Tensors, &str)> = vec![
        (
            vec![],
            vec![("a".into(), f(vec![2], 2)), ("a".into(), f(vec![2], 2))],
            "twice",
        ),
        (
            vec![],
            vec![("w.codes".into(), f(vec![2], 2)), ("w".into(), q.clone())],
            "twice",
        ),
        (vec![], vec![(long.clone(), f(vec![2], 2))], "at most 63"),
        (vec![], vec![("x".repeat(58), q.clone())], "at most 63"),
        (vec![], vec![("a".into(), f(vec![2, 2], 3))], "shape"),
        (
            vec![],
            vec![("a".into(), f(vec![1, 1, 1, 1, 2], 2))],
            "at most 4",
        ),
        (
            vec![("general.alignment".into(), MetaValue::U64(32))],
            vec![],
            "power of two",
        ),
        (
            vec![("general.alignment".into(), MetaValue::U32(48))],
            vec![],
            "power of two",
        ),
        (
            vec![
                ("a".into(), MetaValue::U8(1)),
                ("a".into(), MetaValue::U8(2)),
            ],
            vec![],
            "twice",
        ),
        (
            vec![(
                "a".into(),
                MetaValue::Array(MetaType::U32, vec![MetaValue::U32(1), MetaValue::I32(2)]),
            )],
            vec![],
            "holds a I32",
        ),
    ];
    for (meta, tensors, want) in cases {
        let e = gguf::model_bytes(&meta, &tensors).unwrap_err();
        assert!(e.to_string().contains(want), "want '{want}', got: {e}");
    }
    // A name of exactly 63 bytes is fine.
    gguf::model_bytes(&[], &[("y".repeat(63), f(vec![1], 1))]).unwrap();
    // Writing into a missing directory is an I/O error naming the path.
    let e = gguf::write_model("/nonexistent/wgquant/m.gguf", &[], &[]).unwrap_err();
    assert!(
        matches!(e, Error::Io { .. }) && e.to_string().contains("m.gguf"),
        "{e}"
    );
}

/// A GGUF file built field by field, to make files wgquant's writer never would.
#[derive(Default)]
struct Builder {
    version: u32,
    kvs: Vec<Vec<u8>>,
    infos: Vec<Vec<u8>>,
    data: Vec<u8>,
    tensor_count: Option<u64>,
    kv_count: Option<u64>,
}

fn gstr(s: &str) -> Vec<u8> {
    [&(s.len() as u64).to_le_bytes()[..], s.as_bytes()].concat()
}

impl Builder {
    fn new() -> Self {
        Builder {
            version: 3,
            ..Default::default()
        }
    }
    fn kv_raw(mut self, key: &str, ty: u32, value: &[u8]) -> Self {
        self.kvs
            .push([gstr(key), ty.to_le_bytes().to_vec(), value.to_vec()].concat());
        self
    }
    fn kv_str(self, key: &str, v: &str) -> Self {
        self.kv_raw(key, 8, &gstr(v))
    }
    /// A tensor whose data is appended (padded to 32).
    fn tensor(mut self, name: &str, dims: &[u64], ty: u32, data: &[u8]) -> Self {
        let off = self.data.len() as u64;
        self.data.extend_from_slice(data);
        self.data.resize(self.data.len().next_multiple_of(32), 0);
        self.tensor_at(name, dims, ty, off)
    }
    fn tensor_at(mut self, name: &str, dims: &[u64], ty: u32, off: u64) -> Self {
        let mut b = gstr(name);
        b.extend_from_slice(&(dims.len() as u32).to_le_bytes());
        for d in dims {
            b.extend_from_slice(&d.to_le_bytes());
        }
        b.extend_from_slice(&ty.to_le_bytes());
        b.extend_from_slice(&off.to_le_bytes());
        self.infos.push(b);
        self
    }
    fn build(&self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend_from_slice(&self.version.to_le_bytes());
        let tc = self.tensor_count.unwrap_or(self.infos.len() as u64);
        let kc = self.kv_count.unwrap_or(self.kvs.len() as u64);
        out.extend_from_slice(&tc.to_le_bytes());
        out.extend_from_slice(&kc.to_le_bytes());
        for kv in &self.kvs {
            out.extend_from_slice(kv);
        }
        for i in &self.infos {
            out.extend_from_slice(i);
        }
        out.resize(out.len().next_multiple_of(32), 0);
        out.extend_from_slice(&self.data);
        out
    }
}

fn le<T: Copy, const N: usize>(v: &[T], f: fn(T) -> [u8; N]) -> Vec<u8> {
    v.iter().flat_map(|&x| f(x)).collect()
}

#[test]
fn gguf_reads_plain_types() {
    let vals = [1.0f32, -2.5, 0.125, 3.0, -0.0, 7.5];
    let q8 = QuantizedTensor::quantize(Format::Q8_0, &Rng::new(5).normal_vec(64), 2, 32).unwrap();
    for version in [2, 3] {
        let mut b = Builder::new()
            .tensor(
                "f16",
                &[3, 2],
                1,
                &le(&vals, |v| half::f16::from_f32(v).to_le_bytes()),
            )
            .tensor(
                "bf16",
                &[6],
                30,
                &le(&vals, |v| half::bf16::from_f32(v).to_le_bytes()),
            )
            .tensor(
                "i8",
                &[2, 1, 3],
                24,
                &le(&[1i8, -2, 3, -4, 5, -128], i8::to_le_bytes),
            )
            .tensor(
                "i16",
                &[6],
                25,
                &le(&[1i16, -300, 3, 4, 5, 32767], i16::to_le_bytes),
            )
            .tensor(
                "i32",
                &[6],
                26,
                &le(&[1i32, -70000, 3, 4, 5, 1 << 24], i32::to_le_bytes),
            )
            .tensor("q8", &[32, 2], 8, q8.bytes())
            .tensor("empty", &[0, 5], 0, &[]);
        b.version = version;
        let m = gguf::read_model_bytes(&b.build()).unwrap();
        assert_eq!(m.version(), version);
        let float = |name: &str| match m.tensor(name).unwrap() {
            StoredTensor::Float { shape, data } => (shape.clone(), data.clone()),
            other => panic!("{name}: {other:?}"),
        };
        assert_eq!(float("f16"), (vec![2, 3], vals.to_vec()));
        assert_eq!(float("bf16"), (vec![6], vals.to_vec()));
        assert_eq!(
            float("i8"),
            (vec![3, 1, 2], vec![1.0, -2.0, 3.0, -4.0, 5.0, -128.0])
        );
        assert_eq!(float("i16").1, vec![1.0, -300.0, 3.0, 4.0, 5.0, 32767.0]);
        assert_eq!(
            float("i32").1,
            vec![1.0, -70000.0, 3.0, 4.0, 5.0, 16777216.0]
        );
        assert_eq!(float("empty"), (vec![5, 0], vec![]));
        assert_eq!(m.tensor("q8"), Some(&StoredTensor::Quantized(q8.clone())));
    }
    // An I32 value f32 cannot hold exactly.
    let b = Builder::new().tensor("i32", &[1], 26, &((1 << 24) + 1i32).to_le_bytes());
    let e = gguf::read_model_bytes(&b.build()).unwrap_err();
    assert!(matches!(e, Error::UnsupportedFormat(_)), "{e}");
    // A custom alignment is honoured.
    let mut b = Builder::new().kv_raw("general.alignment", 4, &64u32.to_le_bytes());
    b.infos.push(
        [
            gstr("x"),
            1u32.to_le_bytes().to_vec(),
            2u64.to_le_bytes().to_vec(),
            0u32.to_le_bytes().to_vec(),
            0u64.to_le_bytes().to_vec(),
        ]
        .concat(),
    );
    let mut bytes = b.build();
    bytes.resize(bytes.len().next_multiple_of(64), 0);
    bytes.extend_from_slice(&le(&[1.0f32, 2.0], f32::to_le_bytes));
    let m = gguf::read_model_bytes(&bytes).unwrap();
    assert_eq!(m.alignment(), 64);
    assert_eq!(
        m.tensor("x"),
        Some(&StoredTensor::Float {
            shape: vec![2],
            data: vec![1.0, 2.0]
        })
    );
}

/// A small valid file whose last tensor ends exactly at the end of the file.
fn small_valid() -> Vec<u8> {
    let w = Rng::new(6).normal_vec(64);
    let tensors = vec![
        (
            "a".to_string(),
            StoredTensor::Quantized(QuantizedTensor::quantize(Format::Q4_0, &w, 2, 32).unwrap()),
        ),
        (
            "b".to_string(),
            StoredTensor::Quantized(
                QuantizedTensor::quantize(Format::Int(IntFormat::new(4, 32, true)), &w, 1, 64)
                    .unwrap(),
            ),
        ),
        (
            "c".to_string(),
            StoredTensor::Float {
                shape: vec![2, 4],
                data: w[..8].to_vec(),
            },
        ),
    ];
    let meta = vec![
        ("s".to_string(), MetaValue::string_array(["x", "yz"])),
        (
            "n".to_string(),
            MetaValue::Array(
                MetaType::Array,
                vec![MetaValue::Array(MetaType::U8, vec![MetaValue::U8(1)])],
            ),
        ),
    ];
    gguf::model_bytes(&meta, &tensors).unwrap()
}

#[test]
fn gguf_truncated_at_every_length() {
    let good = small_valid();
    gguf::read_model_bytes(&good).unwrap();
    for n in 0..good.len() {
        let r = gguf::read_model_bytes(&good[..n]);
        let e = r.expect_err(&format!("prefix of {n} bytes was accepted"));
        assert!(is_malformed(&e), "prefix {n}: {e}");
    }
}

#[test]
fn gguf_random_corruption_never_panics() {
    let good = small_valid();
    let mut rng = Rng::new(7);
    for _ in 0..4000 {
        let mut b = good.clone();
        for _ in 0..1 + rng.next_u64() % 4 {
            let i = (rng.next_u64() % b.len() as u64) as usize;
            b[i] = match rng.next_u64() % 3 {
                0 => rng.next_u64() as u8,
                1 => 0xFF,
                _ => b[i] ^ (1 << (rng.next_u64() % 8)),
            };
        }
        // Ok (the byte was in data or padding) or a typed error; never a panic.
        let _ = gguf::read_model_bytes(&b);
    }
}

#[test]
fn gguf_corrupted_counts_and_sizes() {
    let good = small_valid();
    let patch = |at: usize, v: &[u8]| {
        let mut b = good.clone();
        b[at..at + v.len()].copy_from_slice(v);
        b
    };
    // Header field offsets: magic 0, version 4, tensor_count 8, kv_count 16, first key 24.
    let cases = vec![
        ("tensor_count max", patch(8, &u64::MAX.to_le_bytes())),
        ("tensor_count 2^40", patch(8, &(1u64 << 40).to_le_bytes())),
        ("tensor_count +1", patch(8, &8u64.to_le_bytes())),
        ("kv_count max", patch(16, &u64::MAX.to_le_bytes())),
        ("kv_count 2^32", patch(16, &(1u64 << 32).to_le_bytes())),
        ("key length max", patch(24, &u64::MAX.to_le_bytes())),
        ("key length 2^40", patch(24, &(1u64 << 40).to_le_bytes())),
    ];
    for (what, b) in cases {
        let e = gguf::read_model_bytes(&b).unwrap_err();
        assert!(is_malformed(&e), "{what}: {e}");
    }

    let ok_tensor = |b: Builder| b.tensor("t", &[4], 0, &[0; 16]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "string value length",
            ok_tensor(Builder::new().kv_raw("k", 8, &u64::MAX.to_le_bytes())).build(),
        ),
        (
            "array count",
            ok_tensor(Builder::new().kv_raw(
                "k",
                9,
                &[&0u32.to_le_bytes()[..], &u64::MAX.to_le_bytes()].concat(),
            ))
            .build(),
        ),
        (
            "array count of strings",
            ok_tensor(Builder::new().kv_raw(
                "k",
                9,
                &[&8u32.to_le_bytes()[..], &(1u64 << 60).to_le_bytes()].concat(),
            ))
            .build(),
        ),
        (
            "array element type",
            ok_tensor(Builder::new().kv_raw(
                "k",
                9,
                &[&13u32.to_le_bytes()[..], &1u64.to_le_bytes(), &[0]].concat(),
            ))
            .build(),
        ),
        (
            "value type",
            ok_tensor(Builder::new().kv_raw("k", 13, &[0; 8])).build(),
        ),
        ("deep nesting", {
            let mut v = Vec::new();
            for _ in 0..100 {
                v.extend_from_slice(&9u32.to_le_bytes());
                v.extend_from_slice(&1u64.to_le_bytes());
            }
            v.extend_from_slice(&0u32.to_le_bytes());
            v.extend_from_slice(&0u64.to_le_bytes());
            ok_tensor(Builder::new().kv_raw("k", 9, &v[12..])).build()
        }),
        (
            "duplicate key",
            ok_tensor(Builder::new().kv_str("k", "a").kv_str("k", "b")).build(),
        ),
        (
            "alignment type",
            ok_tensor(Builder::new().kv_raw("general.alignment", 10, &32u64.to_le_bytes())).build(),
        ),
        (
            "alignment zero",
            ok_tensor(Builder::new().kv_raw("general.alignment", 4, &0u32.to_le_bytes())).build(),
        ),
        (
            "alignment 24",
            ok_tensor(Builder::new().kv_raw("general.alignment", 4, &24u32.to_le_bytes())).build(),
        ),
        (
            "n_dims 5",
            Builder::new()
                .tensor("t", &[1, 1, 1, 1, 4], 0, &[0; 16])
                .build(),
        ),
        ("n_dims huge", {
            let mut b = Builder::new();
            b.infos
                .push([gstr("t"), u32::MAX.to_le_bytes().to_vec()].concat());
            b.build()
        }),
        (
            "dim huge",
            Builder::new().tensor("t", &[u64::MAX], 0, &[0; 16]).build(),
        ),
        (
            "dims overflow",
            Builder::new()
                .tensor("t", &[1 << 32, 1 << 32, 1 << 32], 0, &[0; 16])
                .build(),
        ),
        (
            "dims beyond file",
            Builder::new()
                .tensor("t", &[1 << 20, 1 << 20], 0, &[0; 16])
                .build(),
        ),
        (
            "zero dim, huge others",
            Builder::new()
                .tensor("t", &[0, 1 << 62, 1 << 62], 8, &[])
                .build(),
        ),
        (
            "offset beyond file",
            ok_tensor(Builder::new())
                .tensor_at("u", &[4], 0, 1 << 20)
                .build(),
        ),
        (
            "offset max",
            ok_tensor(Builder::new())
                .tensor_at("u", &[4], 0, u64::MAX)
                .build(),
        ),
        (
            "duplicate tensor",
            ok_tensor(ok_tensor(Builder::new())).build(),
        ),
        (
            "block size",
            Builder::new().tensor("t", &[16, 1], 8, &[0; 17]).build(),
        ),
        ("tensor name length", {
            let mut b = Builder::new();
            b.infos.push((u64::MAX - 3).to_le_bytes().to_vec());
            b.data = vec![0; 64];
            b.build()
        }),
        ("bad utf-8 name", {
            let mut b = Builder::new();
            b.infos.push(
                [
                    &2u64.to_le_bytes()[..],
                    &[0xC3, 0x28],
                    &1u32.to_le_bytes(),
                    &4u64.to_le_bytes(),
                    &0u32.to_le_bytes(),
                    &0u64.to_le_bytes(),
                ]
                .concat(),
            );
            b.data = vec![0; 32];
            b.build()
        }),
    ];
    for (what, b) in cases {
        let e = gguf::read_model_bytes(&b).unwrap_err();
        assert!(is_malformed(&e), "{what}: {e}");
    }

    // Wrong magic, version 1, big-endian, unknown version.
    let e = gguf::read_model_bytes(b"GGML\x03\0\0\0").unwrap_err();
    assert!(
        is_malformed(&e) && e.to_string().contains("not a GGUF"),
        "{e}"
    );
    let mut b = Builder::new();
    for (v, want) in [
        (1u32, "version 1"),
        (3u32.swap_bytes(), "big-endian"),
        (4, "version 4"),
    ] {
        b.version = v;
        let e = gguf::read_model_bytes(&b.build()).unwrap_err();
        assert!(
            matches!(e, Error::UnsupportedFormat(_)) && e.to_string().contains(want),
            "{e}"
        );
    }
}

#[test]
fn gguf_unknown_type_is_named() {
    for (id, name) in [(11u32, Some("Q3_K")), (23, Some("IQ4_XS")), (999, None)] {
        let b = Builder::new().tensor("ok", &[4], 0, &[0; 16]).tensor(
            "blk.0.ffn_down.weight",
            &[256, 1],
            id,
            &[0; 144],
        );
        let e = gguf::read_model_bytes(&b.build()).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, Error::UnsupportedFormat(_)), "{msg}");
        assert!(msg.contains(&format!("type id {id}")), "{msg}");
        assert!(msg.contains("blk.0.ffn_down.weight"), "{msg}");
        if let Some(n) = name {
            assert!(msg.contains(n), "{msg}");
        }
    }
}

#[test]
fn gguf_inconsistent_wgquant_metadata() {
    let q8 = QuantizedTensor::quantize(Format::Q8_0, &[1.0; 32], 1, 32).unwrap();
    let q8b = q8.bytes().to_vec();
    let cases: Vec<(&str, Builder, ErrorCheck)> = vec![
        (
            "format disagrees with type",
            Builder::new()
                .kv_str("wgquant.format.w", "q4_0")
                .tensor("w", &[32, 1], 8, &q8b),
            is_malformed,
        ),
        (
            "format names a missing tensor",
            Builder::new()
                .kv_str("wgquant.format.v", "q8_0")
                .tensor("w", &[32, 1], 8, &q8b),
            is_malformed,
        ),
        (
            "unknown format",
            Builder::new()
                .kv_str("wgquant.format.w", "int3_g7")
                .tensor("w", &[32, 1], 8, &q8b),
            |e| matches!(e, Error::UnsupportedFormat(_)),
        ),
        (
            "format not a string",
            Builder::new()
                .kv_raw("wgquant.format.w", 4, &1u32.to_le_bytes())
                .tensor("w", &[32, 1], 8, &q8b),
            is_malformed,
        ),
        (
            "int planes missing",
            Builder::new()
                .kv_str("wgquant.format.w", "int4_g32")
                .tensor("w.codes", &[16, 1], 24, &[0; 16]),
            is_malformed,
        ),
        (
            "int planes of wrong type",
            Builder::new()
                .kv_str("wgquant.format.w", "int4_g32")
                .tensor("w.codes", &[16, 1], 24, &[0; 16])
                .tensor("w.scales", &[1, 1], 0, &[0; 4]),
            is_malformed,
        ),
        (
            "int planes disagree",
            Builder::new()
                .kv_str("wgquant.format.w", "int4_g32")
                .tensor("w.codes", &[16, 1], 24, &[0; 16])
                .tensor("w.scales", &[2, 1], 1, &[0; 4]),
            is_malformed,
        ),
        (
            "int planes disagree on rows",
            Builder::new()
                .kv_str("wgquant.format.w", "int8_g32")
                .tensor("w.codes", &[32, 2], 24, &[0; 64])
                .tensor("w.scales", &[1, 1], 1, &[0; 2]),
            is_malformed,
        ),
        (
            "zero point out of range",
            Builder::new()
                .kv_str("wgquant.format.w", "int4_g32_asym")
                .tensor("w.codes", &[16, 1], 24, &[0; 16])
                .tensor("w.scales", &[1, 1], 1, &[0; 2])
                .tensor("w.zeros", &[1, 1], 24, &[200]),
            is_malformed,
        ),
    ];
    for (what, b, ok) in cases {
        let e = gguf::read_model_bytes(&b.build()).unwrap_err();
        assert!(ok(&e), "{what}: {e}");
    }
    // A well-formed hand-built int tensor reads back.
    let b = Builder::new()
        .kv_str("wgquant.format.w", "int4_g32")
        .tensor("w.codes", &[16, 1], 24, &[0x98; 16])
        .tensor(
            "w.scales",
            &[1, 1],
            1,
            &half::f16::from_f32(0.5).to_le_bytes(),
        );
    let m = gguf::read_model_bytes(&b.build()).unwrap();
    let Some(StoredTensor::Quantized(q)) = m.tensor("w") else {
        panic!("{:?}", m.tensor("w"))
    };
    assert_eq!(q.format().to_string(), "int4_g32");
    // Codes 8 and 9 alternate; symmetric zero is 8: weights 0, 0.5, 0, 0.5, ...
    let want: Vec<f32> = (0..32)
        .map(|i| if i % 2 == 0 { 0.0 } else { 0.5 })
        .collect();
    assert_eq!(q.dequantize(), want);
    assert_eq!(m.tensor_names(), ["w"]);
}

#[test]
fn gguf_errors_name_the_path() {
    let dir = TempDir::new("io-gguf-path");
    let p = dir.path("broken.gguf");
    std::fs::write(&p, &small_valid()[..100]).unwrap();
    let e = gguf::read_model(&p).unwrap_err();
    assert!(
        is_malformed(&e) && e.to_string().contains("broken.gguf"),
        "{e}"
    );
    let e = gguf::read_model(dir.path("missing.gguf")).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
}

#[test]
fn gguf_tensors_may_not_overlap_or_be_misaligned() {
    let data = vec![0u8; 64];
    // Two tensors over the same 64 bytes: a small file must not name a range many times.
    let b = Builder::new()
        .tensor("a", &[16], 0, &data)
        .tensor_at("b", &[16], 0, 0);
    let e = gguf::read_model_bytes(&b.build()).unwrap_err();
    assert!(is_malformed(&e) && e.to_string().contains("overlap"), "{e}");
    // Partly overlapping.
    let b = Builder::new()
        .tensor("a", &[16], 0, &data)
        .tensor_at("b", &[8], 0, 32);
    let e = gguf::read_model_bytes(&b.build()).unwrap_err();
    assert!(is_malformed(&e) && e.to_string().contains("overlap"), "{e}");
    // An offset that is not a multiple of the alignment.
    let b = Builder::new()
        .tensor("a", &[8], 0, &data)
        .tensor_at("b", &[4], 0, 36);
    let e = gguf::read_model_bytes(&b.build()).unwrap_err();
    assert!(
        is_malformed(&e) && e.to_string().contains("alignment"),
        "{e}"
    );
    // Empty tensors take no bytes and may sit anywhere aligned; back to back is fine.
    let b = Builder::new()
        .tensor("a", &[8], 0, &data[..32])
        .tensor("b", &[8], 0, &data[..32])
        .tensor_at("empty", &[0], 0, 0);
    let m = gguf::read_model_bytes(&b.build()).unwrap();
    assert_eq!(m.tensor_names(), ["a", "b", "empty"]);
}

#[test]
fn gguf_without_tensors_is_not_padded() {
    // The writer pads the header only when a data section follows, so an alignment copied
    // from an input cannot blow up an empty file.
    let meta = vec![("general.alignment".to_string(), MetaValue::U32(1 << 30))];
    let b = gguf::model_bytes(&meta, &[]).unwrap();
    assert!(b.len() < 256, "{}", b.len());
    let m = gguf::read_model_bytes(&b).unwrap();
    assert_eq!(m.alignment(), 1 << 30);
    assert!(m.tensors().is_empty());
}

#[test]
fn gguf_mapped_file_reads_like_bytes() {
    let dir = TempDir::new("io-gguf-mapped");
    let bytes = small_valid();
    let p = dir.path("m.gguf");
    std::fs::write(&p, &bytes).unwrap();

    // read_model goes through the map; it must give exactly what the in-memory path gives.
    assert_eq!(
        gguf::read_model(&p).unwrap(),
        gguf::read_model_bytes(&bytes).unwrap()
    );
    let mut mem = GgufReader::from_bytes(&bytes).unwrap();
    let file = GgufFile::open(&p).unwrap();
    assert_eq!(file.header(), mem.header());
    assert_eq!(file.path(), p.as_path());
    assert_eq!(file.mapped().bytes(), &bytes[..]);
    for (i, t) in file.header().tensors.iter().enumerate() {
        let raw = file.tensor_bytes(i).unwrap();
        assert_eq!(raw.len() as u64, t.n_bytes, "{}", t.name);
        // A borrow of the map: it points into the mapped bytes, at the tensor's offset.
        let start = (file.header().data_offset + t.offset) as usize;
        assert!(std::ptr::eq(
            raw,
            &file.mapped().bytes()[start..start + raw.len()]
        ));
        assert_eq!(raw, mem.tensor_bytes(i).unwrap());
        assert_eq!(raw, &mem.tensor_data(i).unwrap()[..]);
    }
    let n = file.header().tensors.len();
    let e = file.tensor_bytes(n).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    assert_eq!(
        file.into_model().unwrap(),
        gguf::read_model_bytes(&bytes).unwrap()
    );

    // The generic Read + Seek path agrees as well.
    let stream = GgufReader::new(std::io::Cursor::new(&bytes[..]), bytes.len() as u64).unwrap();
    assert_eq!(
        stream.into_model().unwrap(),
        gguf::read_model_bytes(&bytes).unwrap()
    );
}

#[test]
fn gguf_mapped_truncated_files_are_malformed() {
    let dir = TempDir::new("io-gguf-mapped-trunc");
    let good = small_valid();
    let p = dir.path("t.gguf");
    // Every prefix through the header, then a spread of prefixes through the data.
    let header_end = GgufReader::from_bytes(&good).unwrap().header().data_offset as usize;
    let lens = (0..header_end).chain((header_end..good.len()).step_by(7));
    for n in lens {
        std::fs::write(&p, &good[..n]).unwrap();
        let e = GgufFile::open(&p).and_then(|f| f.into_model());
        let e = e.expect_err(&format!("mapped prefix of {n} bytes was accepted"));
        assert!(
            is_malformed(&e) && e.to_string().contains("t.gguf"),
            "prefix {n}: {e}"
        );
        let e = gguf::read_model(&p).unwrap_err();
        assert!(is_malformed(&e), "prefix {n}: {e}");
    }
    // An empty file maps (or fails to) without a panic and is malformed.
    std::fs::write(&p, b"").unwrap();
    let e = gguf::read_model(&p).unwrap_err();
    assert!(is_malformed(&e), "{e}");
    // A directory cannot be mapped: an I/O error, not a panic.
    let e = GgufFile::open(dir.path("")).err().unwrap();
    assert!(matches!(e, Error::Io { .. }), "{e}");
}

/// Not a test: writes a source safetensors and one GGUF per format for
/// `scripts/check_gguf.py`. With `WGQUANT_CHECK_SRC=<file.safetensors>` it quantizes that
/// file's 2-D tensors instead of random ones; `WGQUANT_CHECK_OUT=<dir>` picks the output
/// directory (default: a temp dir, printed).
///
/// `cargo test --release --test io -- --ignored --nocapture export_for_check_gguf`
#[test]
#[ignore]
fn export_for_check_gguf() {
    let out = std::env::var_os("WGQUANT_CHECK_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("wgquant-check-gguf"));
    std::fs::create_dir_all(&out).unwrap();
    let src = match std::env::var_os("WGQUANT_CHECK_SRC") {
        Some(p) => PathBuf::from(p),
        None => {
            let mut rng = Rng::new(8);
            let mut tensors = Vec::new();
            for (name, rows, k) in [
                ("blk.0.attn_q.weight", 64, 256),
                ("blk.0.ffn_up.weight", 96, 128),
            ] {
                let mut w = rng.normal_vec(rows * k);
                // Outliers and an all-zero block exercise the scale edge cases.
                w[3] = 40.0;
                w[k + 5] = -40.0;
                w[2 * k..2 * k + 32].fill(0.0);
                tensors.push((name.to_string(), Array::new(vec![rows, k], w).unwrap()));
            }
            tensors.push((
                "output_norm.weight".into(),
                Array::new(vec![128], rng.normal_vec(128)).unwrap(),
            ));
            let p = out.join("source.safetensors");
            st::write_safetensors(&p, &tensors).unwrap();
            p
        }
    };
    let source = st::read_safetensors(&src).unwrap();
    for f in Format::all() {
        let mut tensors = Vec::new();
        for (name, a) in &source.tensors {
            let t = match a.shape[..] {
                [rows, k] if f.check_k(k).is_ok() => {
                    StoredTensor::Quantized(QuantizedTensor::quantize(f, &a.data, rows, k).unwrap())
                }
                _ => StoredTensor::Float {
                    shape: a.shape.clone(),
                    data: a.data.clone(),
                },
            };
            tensors.push((name.clone(), t));
        }
        let meta = vec![("general.name".to_string(), MetaValue::from("check_gguf"))];
        let p = out.join(format!("model-{f}.gguf"));
        gguf::write_model(&p, &meta, &tensors).unwrap();
        let back = gguf::read_model(&p).unwrap();
        assert_eq!(back.tensors(), &tensors[..]);
        println!("{}", p.display());
    }
    println!("source: {}", src.display());
}

/// Not a test: reads the GGUF at `WGQUANT_READ_GGUF` (e.g. one written by the Python
/// `gguf` package) and prints its metadata keys and tensors.
///
/// `WGQUANT_READ_GGUF=m.gguf cargo test --release --test io -- --ignored --nocapture dump_gguf`
#[test]
#[ignore]
fn dump_gguf() {
    let Some(p) = std::env::var_os("WGQUANT_READ_GGUF") else {
        return;
    };
    let m = gguf::read_model(&p).unwrap();
    println!("version {} alignment {}", m.version(), m.alignment());
    for (k, v) in m.metadata_entries() {
        let s = format!("{v:?}");
        println!("  {k} = {}", &s[..s.len().min(100)]);
    }
    for (name, t) in m.tensors() {
        match t {
            StoredTensor::Float { shape, data } => {
                println!("  {name}: Float {shape:?} first {:?}", data.first())
            }
            StoredTensor::Quantized(q) => println!(
                "  {name}: {} {} x {} dequant[0..2] {:?}",
                q.format(),
                q.rows(),
                q.k(),
                &q.dequantize()[..2]
            ),
        }
    }
}
