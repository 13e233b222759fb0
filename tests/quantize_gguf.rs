//! `wgquant quantize` with a GGUF input: every tensor is dequantized and 2-D weights are
//! requantized to the target format, all metadata is copied in order, tensor names and
//! order are kept, and tensors already in the target format are copied unchanged.

mod common;

use common::cli::{ok, s};
use common::temp::TempDir;

use std::path::{Path, PathBuf};
use std::process::Command;
use wgquant::format::reference::nmse;
use wgquant::format::IntFormat;
use wgquant::io::gguf::{self, GgufReader, MetaType, MetaValue, Model, StoredTensor};
use wgquant::rng::Rng;
use wgquant::{Format, QuantizedTensor};

/// Metadata like a llama.cpp model's: strings, numbers, arrays of strings, floats and ints,
/// a nested array; `general.file_type` = 1 (MOSTLY_F16).
fn source_metadata() -> Vec<(String, MetaValue)> {
    let tokens = ["<unk>", "<s>", "</s>", "a", "b", "ab", "\u{e9}t\u{e9}"];
    vec![
        ("general.architecture".into(), "llama".into()),
        ("general.name".into(), "tiny test model".into()),
        ("general.file_type".into(), MetaValue::U32(1)),
        ("llama.block_count".into(), MetaValue::U32(1)),
        ("llama.embedding_length".into(), MetaValue::U32(256)),
        ("llama.rope.freq_base".into(), MetaValue::F32(10000.0)),
        (
            "llama.attention.layer_norm_rms_epsilon".into(),
            1e-5f32.into(),
        ),
        ("tokenizer.ggml.model".into(), "gpt2".into()),
        (
            "tokenizer.ggml.tokens".into(),
            MetaValue::string_array(tokens),
        ),
        (
            "tokenizer.ggml.scores".into(),
            MetaValue::Array(
                MetaType::F32,
                (0..tokens.len())
                    .map(|i| MetaValue::F32(-(i as f32)))
                    .collect(),
            ),
        ),
        (
            "tokenizer.ggml.token_type".into(),
            MetaValue::Array(
                MetaType::I32,
                (0..tokens.len())
                    .map(|i| MetaValue::I32(i as i32 % 3))
                    .collect(),
            ),
        ),
        (
            "tokenizer.ggml.merges".into(),
            MetaValue::string_array(["a b"]),
        ),
        ("tokenizer.ggml.add_bos_token".into(), true.into()),
        (
            "test.nested".into(),
            MetaValue::Array(
                MetaType::Array,
                vec![MetaValue::Array(
                    MetaType::U64,
                    vec![MetaValue::U64(1 << 40)],
                )],
            ),
        ),
    ]
}

/// Rewrites F32 tensor `name` of a GGUF file as F16 in place: type id 1 and the f16 bytes
/// of its values (which must be f16-exact) at the same offset. Our writer stores floats as
/// F32 only; this gives the test a real F16 tensor without another GGUF writer.
fn retype_to_f16(bytes: &mut [u8], name: &str) {
    let h = GgufReader::from_bytes(bytes).unwrap().header().clone();
    let i = h.tensors.iter().position(|t| t.name == name).unwrap();
    let t = &h.tensors[i];
    let mut key = (name.len() as u64).to_le_bytes().to_vec();
    key.extend_from_slice(name.as_bytes());
    let at = bytes[..h.data_offset as usize]
        .windows(key.len())
        .position(|w| w == key)
        .unwrap();
    let ty = at + key.len() + 4 + 8 * t.dims.len();
    assert_eq!(bytes[ty..ty + 4], 0u32.to_le_bytes(), "{name} must be F32");
    bytes[ty..ty + 4].copy_from_slice(&1u32.to_le_bytes());
    let start = (h.data_offset + t.offset) as usize;
    let data: Vec<f32> = bytes[start..start + t.n_bytes as usize]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    for (j, v) in data.iter().enumerate() {
        let h16 = half::f16::from_f32(*v);
        assert_eq!(h16.to_f32(), *v, "{name}: value {j} is not f16-exact");
        bytes[start + 2 * j..start + 2 * j + 2].copy_from_slice(&h16.to_le_bytes());
    }
    // The rest of the old F32 slot is padding now.
    bytes[start + 2 * data.len()..start + 4 * data.len()].fill(0);
}

const K: usize = 256;

/// The source model: F16 2-D, F32 1-D, Q8_0 2-D, F32 2-D, a 2-D F32 whose rows fit no
/// block (kept), a 3-D F32 and an F32 1-D at the end.
fn write_source(dir: &TempDir) -> PathBuf {
    let mut rng = Rng::new(7);
    let f16_exact = |v: Vec<f32>| -> Vec<f32> {
        v.into_iter()
            .map(|x| half::f16::from_f32(x).to_f32())
            .collect()
    };
    let float = |shape: Vec<usize>, data: Vec<f32>| StoredTensor::Float { shape, data };
    let q8 = QuantizedTensor::quantize(Format::Q8_0, &rng.normal_vec(48 * K), 48, K).unwrap();
    let tensors = vec![
        (
            "token_embd.weight".to_string(),
            float(vec![40, K], f16_exact(rng.normal_vec(40 * K))),
        ),
        (
            "blk.0.attn_norm.weight".to_string(),
            float(vec![K], rng.normal_vec(K)),
        ),
        (
            "blk.0.attn_q.weight".to_string(),
            StoredTensor::Quantized(q8),
        ),
        (
            "blk.0.ffn_up.weight".to_string(),
            float(vec![24, K], rng.normal_vec(24 * K)),
        ),
        (
            "blk.0.odd.weight".to_string(),
            float(vec![3, 100], rng.normal_vec(300)),
        ),
        (
            "blk.0.cube".to_string(),
            float(vec![2, 2, 32], rng.normal_vec(128)),
        ),
        (
            "output_norm.weight".to_string(),
            float(vec![K], rng.normal_vec(K)),
        ),
    ];
    let mut bytes = gguf::model_bytes(&source_metadata(), &tensors).unwrap();
    retype_to_f16(&mut bytes, "token_embd.weight");
    let p = dir.path("source.gguf");
    std::fs::write(&p, &bytes).unwrap();
    p
}

/// The f32 values a tensor stands for, and its shape.
fn values(t: &StoredTensor) -> (Vec<usize>, Vec<f32>) {
    match t {
        StoredTensor::Float { shape, data } => (shape.clone(), data.clone()),
        StoredTensor::Quantized(q) => (vec![q.rows(), q.k()], q.dequantize()),
    }
}

/// Metadata of `m` without the entries the writer derives (`wgquant.*`) or the command
/// sets (`general.quantized_by`, `general.file_type`).
fn copied_metadata(m: &Model) -> Vec<(String, MetaValue)> {
    m.metadata_entries()
        .iter()
        .filter(|(k, _)| {
            !k.starts_with("wgquant.") && k != "general.quantized_by" && k != "general.file_type"
        })
        .cloned()
        .collect()
}

/// (name, GGUF type, dims) of every tensor in the file, as our reader sees it.
fn layout(path: &Path) -> Vec<(String, String, Vec<u64>)> {
    let f = gguf::GgufFile::open(path).unwrap();
    f.header()
        .tensors
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.ggml_type.name().to_string(),
                t.dims.clone(),
            )
        })
        .collect()
}

/// The same list as the reference Python `gguf` package reads it, or None (with a note)
/// where python3 or the package is missing.
fn python_layout(path: &Path) -> Option<Vec<(String, String, Vec<u64>)>> {
    let script = "import sys, gguf\n\
                  r = gguf.GGUFReader(sys.argv[1])\n\
                  for t in r.tensors:\n\
                  \x20   print(t.name, t.tensor_type.name, ','.join(str(int(d)) for d in t.shape))\n";
    let o = Command::new("python3")
        .args(["-c", script, s(path)])
        .output()
        .ok()?;
    if !o.status.success() {
        let err = String::from_utf8_lossy(&o.stderr);
        if err.contains("No module named 'gguf'") {
            eprintln!("python gguf package not installed: reference check skipped");
            return None;
        }
        panic!("python gguf could not read {}:\n{err}", path.display());
    }
    Some(
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| {
                let mut it = l.split(' ');
                let (n, t, d) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
                let dims = d.split(',').map(|x| x.parse().unwrap()).collect();
                (n.to_string(), t.to_string(), dims)
            })
            .collect(),
    )
}

/// NMSE bounds of each format on these normal weights, relative to the values the source
/// tensor stands for (measured: q8_0 3e-5, q4_0 7.4e-3, int4_g128 1.4e-2), with about 2x
/// to 3x headroom.
fn nmse_bound(format: &str) -> f64 {
    match format {
        "q8_0" => 1e-4,
        "q4_0" => 1.5e-2,
        "int4_g128" => 3e-2,
        other => panic!("no bound for {other}"),
    }
}

#[test]
fn quantize_gguf_input_keeps_metadata_and_order() {
    let dir = TempDir::new("qgguf-formats");
    let src_path = write_source(&dir);
    let src = gguf::read_model(&src_path).unwrap();
    // The F16 tensor really is F16 in the source.
    assert_eq!(layout(&src_path)[0].1, "F16");

    for (format, ftype) in [("q4_0", Some(2)), ("q8_0", Some(7)), ("int4_g128", None)] {
        let f: Format = format.parse().unwrap();
        let out_path = dir.path(&format!("{format}.gguf"));
        let (_, err) = ok(&["quantize", s(&src_path), s(&out_path), "--format", format]);
        let out = gguf::read_model(&out_path).unwrap();

        // Metadata: every input entry, same values, same order; file type only where
        // llama.cpp has a value for the format.
        assert_eq!(copied_metadata(&out), copied_metadata(&src), "{format}");
        let want_ftype = MetaValue::U32(ftype.unwrap_or(1));
        assert_eq!(
            out.metadata("general.file_type"),
            Some(&want_ftype),
            "{format}"
        );
        assert!(out
            .metadata("general.quantized_by")
            .and_then(|v| v.as_str())
            .is_some_and(|v| v.starts_with("wgquant")));

        // Same tensors, same order.
        assert_eq!(out.tensor_names(), src.tensor_names(), "{format}");
        for (name, st) in src.tensors() {
            let ot = out.tensor(name).unwrap();
            let (shape, want) = values(st);
            let (oshape, got) = values(ot);
            assert_eq!(oshape, shape, "{format} {name}");
            match (shape.len(), ot) {
                // Not 2-D: f32, bit for bit.
                (n, StoredTensor::Float { data, .. }) if n != 2 => {
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(data), bits(&want), "{format} {name}");
                }
                (2, StoredTensor::Quantized(q)) => {
                    assert_eq!(q.format(), f, "{format} {name}");
                    let want64: Vec<f64> = want.iter().map(|&v| v as f64).collect();
                    let e = nmse(&want64, &got);
                    assert!(e < nmse_bound(format), "{format} {name}: NMSE {e}");
                }
                // Rows of 100 fit no block: kept as f32 with a message.
                (2, StoredTensor::Float { data, .. }) if shape[1] == 100 => {
                    assert_eq!(data, &want);
                    assert!(err.contains("kept blk.0.odd.weight"), "{err}");
                }
                other => panic!("{format} {name}: unexpected {other:?}"),
            }
        }
        // The source's Q8_0 tensor is copied unchanged into a q8_0 output.
        if format == "q8_0" {
            assert_eq!(
                out.tensor("blk.0.attn_q.weight"),
                src.tensor("blk.0.attn_q.weight")
            );
            assert!(err.contains("copied blk.0.attn_q.weight"), "{err}");
        }

        // GGUF-native outputs read the same in the reference Python package.
        if f.codec().ggml_type().is_some() {
            if let Some(py) = python_layout(&out_path) {
                assert_eq!(py, layout(&out_path), "{format}");
                let types: Vec<&str> = py.iter().map(|(_, t, _)| t.as_str()).collect();
                let q = f.codec().ggml_type().unwrap().name();
                assert_eq!(types, [q, "F32", q, q, "F32", "F32", "F32"], "{format}");
            }
        }
    }
}

#[test]
fn quantize_gguf_q8_0_round_trip_is_byte_identical() {
    let dir = TempDir::new("qgguf-roundtrip");
    let src_path = write_source(&dir);
    let once = dir.path("once.gguf");
    let twice = dir.path("twice.gguf");
    ok(&["quantize", s(&src_path), s(&once), "--format", "q8_0"]);
    let (_, err) = ok(&["quantize", s(&once), s(&twice), "--format", "q8_0"]);
    assert!(err.contains("3 already q8_0 copied"), "{err}");
    // Same metadata, same tensors, same bytes: the whole file.
    assert_eq!(
        std::fs::read(&once).unwrap(),
        std::fs::read(&twice).unwrap()
    );

    // An int input goes through the same way (planes dequantized, requantized).
    let int_path = dir.path("int.gguf");
    ok(&["quantize", s(&once), s(&int_path), "--format", "int4_g128"]);
    let back = dir.path("back.gguf");
    ok(&["quantize", s(&int_path), s(&back), "--format", "int4_g128"]);
    assert_eq!(
        std::fs::read(&int_path).unwrap(),
        std::fs::read(&back).unwrap()
    );
    let m = gguf::read_model(&int_path).unwrap();
    assert!(matches!(
        m.tensor("blk.0.attn_q.weight"),
        Some(StoredTensor::Quantized(q)) if q.format() == Format::Int(IntFormat::new(4, 128, false))
    ));
}

/// What is exactly true of requantizing dequantized Q8_0 with Q8_0's round-to-nearest
/// quantizer: a block comes back byte-identical if and only if its f16 scale is finite and
/// non-zero, or all its codes are zero. (The largest |code| of a quantized block is 127, so
/// the dequantized block's max is 127 * d exactly and the new scale is d again; the codes
/// q * d / d round back to q. A scale that underflowed to 0 or overflowed to inf in f16
/// loses the codes.)
#[test]
fn requantizing_dequantized_q8_0_reproduces_the_blocks() {
    let mut rng = Rng::new(11);
    let blocks = 4096;
    let mut w = rng.normal_vec(blocks * 32);
    for (b, block) in w.chunks_exact_mut(32).enumerate() {
        // Magnitudes from 1e-10 (scale underflows) to 1e8 (scale overflows f16).
        let exp = -10.0 + 18.0 * (b as f32 / blocks as f32);
        let scale = 10f32.powf(exp);
        block.iter_mut().for_each(|v| *v *= scale);
        if b % 97 == 0 {
            block.fill(0.0);
        }
        if b % 89 == 0 {
            block[b % 32] *= 50.0; // an outlier
        }
    }
    let q = QuantizedTensor::quantize(Format::Q8_0, &w, blocks / 8, 256).unwrap();
    let again = QuantizedTensor::quantize(Format::Q8_0, &q.dequantize(), blocks / 8, 256).unwrap();
    let (mut same, mut degenerate) = (0, 0);
    for (a, b) in q
        .bytes()
        .chunks_exact(34)
        .zip(again.bytes().chunks_exact(34))
    {
        let d = half::f16::from_le_bytes([a[0], a[1]]);
        let codes_zero = a[2..].iter().all(|&c| c == 0);
        let expect_same = (d.is_finite() && d.to_f32() != 0.0) || codes_zero;
        assert_eq!(a == b, expect_same, "block with scale {d}: {a:?} -> {b:?}");
        if a == b {
            same += 1;
        } else {
            degenerate += 1;
        }
    }
    // Both kinds occur: magnitudes below ~4e-6 or above ~8e6 (about a third of this
    // sweep) lose their codes; everything a real weight looks like comes back unchanged.
    assert!(same > blocks / 2 && degenerate > 0, "{same} {degenerate}");
}
