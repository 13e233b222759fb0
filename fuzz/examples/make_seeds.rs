//! Writes the seed corpora of the fuzz targets with wgquant's own writers:
//! `fuzz/corpus/<target>/seed-*`. Small on purpose (a few KB each): the fuzzer mutates
//! structure, not bulk data.
//!
//! `cargo run --release --manifest-path fuzz/Cargo.toml --example make_seeds`

use std::path::Path;
use wgquant::format::IntFormat;
use wgquant::io::gguf::{self, MetaType, MetaValue, StoredTensor};
use wgquant::io::{npy, safetensors as st, Array};
use wgquant::{Format, QuantizedTensor};

/// Deterministic values with some spread (no RNG needed for seeds).
fn values(n: usize, seed: f32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i as f32 * 0.37 + seed).sin() * 2.0) + if i % 29 == 0 { 6.0 } else { 0.0 })
        .collect()
}

fn quant(f: Format, rows: usize, k: usize) -> StoredTensor {
    let w = values(rows * k, f.bits_per_weight() as f32);
    StoredTensor::Quantized(QuantizedTensor::quantize(f, &w, rows, k).unwrap())
}

fn float(shape: &[usize]) -> StoredTensor {
    let n = shape.iter().product();
    StoredTensor::Float {
        shape: shape.to_vec(),
        data: values(n, 1.0),
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
    println!("{} ({} bytes)", dir.join(name).display(), bytes.len());
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");

    // GGUF: metadata of every kind, and tensors of every storage path of the reader.
    let g = root.join("gguf");
    let meta = vec![
        ("general.architecture".to_string(), MetaValue::from("llama")),
        ("general.name".to_string(), MetaValue::from("seed")),
        ("llama.block_count".to_string(), MetaValue::U32(1)),
        ("llama.rope.freq_base".to_string(), MetaValue::F32(10000.0)),
        ("s.u8".to_string(), MetaValue::U8(7)),
        ("s.i8".to_string(), MetaValue::I8(-7)),
        ("s.u16".to_string(), MetaValue::U16(700)),
        ("s.i16".to_string(), MetaValue::I16(-700)),
        ("s.i32".to_string(), MetaValue::I32(-70000)),
        ("s.bool".to_string(), MetaValue::Bool(true)),
        ("s.u64".to_string(), MetaValue::U64(1 << 40)),
        ("s.i64".to_string(), MetaValue::I64(-(1 << 40))),
        ("s.f64".to_string(), MetaValue::F64(0.125)),
        (
            "tokenizer.ggml.tokens".to_string(),
            MetaValue::string_array(["<s>", "</s>", "a", "b"]),
        ),
        (
            "tokenizer.ggml.scores".to_string(),
            MetaValue::Array(MetaType::F32, vec![MetaValue::F32(0.0); 4]),
        ),
        (
            "s.nested".to_string(),
            MetaValue::Array(
                MetaType::Array,
                vec![MetaValue::Array(MetaType::U8, vec![MetaValue::U8(1)])],
            ),
        ),
    ];
    let int4 = Format::Int(IntFormat::new(4, 32, true));
    let int8 = Format::Int(IntFormat::new(8, 32, false));
    let mixed = vec![
        ("norm.weight".to_string(), float(&[32])),
        ("cube".to_string(), float(&[2, 2, 4])),
        ("q8".to_string(), quant(Format::Q8_0, 2, 32)),
        ("q40".to_string(), quant(Format::Q4_0, 2, 32)),
        ("q41".to_string(), quant(Format::Q4_1, 1, 32)),
        ("q50".to_string(), quant(Format::Q5_0, 1, 32)),
        ("f".to_string(), quant(Format::F32, 1, 32)),
        ("i4".to_string(), quant(int4, 2, 64)),
        ("i8".to_string(), quant(int8, 1, 32)),
        ("nf4".to_string(), quant(Format::NF4, 1, 64)),
    ];
    write(
        &g,
        "seed-mixed.gguf",
        &gguf::model_bytes(&meta, &mixed).unwrap(),
    );
    let kq = vec![
        ("q4k".to_string(), quant(Format::Q4_K, 1, 256)),
        ("q6k".to_string(), quant(Format::Q6_K, 1, 256)),
        ("tq2".to_string(), quant(Format::TQ2_0, 1, 256)),
    ];
    write(
        &g,
        "seed-kquants.gguf",
        &gguf::model_bytes(&meta[..2], &kq).unwrap(),
    );
    write(&g, "seed-empty.gguf", &gguf::model_bytes(&[], &[]).unwrap());
    let one = vec![("w".to_string(), float(&[2, 4]))];
    write(
        &g,
        "seed-one.gguf",
        &gguf::model_bytes(&meta[..1], &one).unwrap(),
    );

    // safetensors (the writer stores f32).
    let s = root.join("safetensors");
    let arr = |shape: &[usize]| Array::new(shape.to_vec(), values(shape.iter().product(), 2.0));
    let tensors = vec![
        ("a.weight".to_string(), arr(&[2, 3]).unwrap()),
        ("b".to_string(), arr(&[4]).unwrap()),
        ("scalar".to_string(), arr(&[]).unwrap()),
    ];
    write(
        &s,
        "seed-three.safetensors",
        &st::safetensors_bytes(&tensors).unwrap(),
    );
    write(
        &s,
        "seed-empty.safetensors",
        &st::safetensors_bytes(&[]).unwrap(),
    );

    // .npy: f32 from the writer, plus f64 and f16 arrays in numpy's own header layout.
    let n = root.join("npy");
    write(
        &n,
        "seed-2d.npy",
        &npy::npy_bytes(&[2, 3], &values(6, 3.0)).unwrap(),
    );
    write(&n, "seed-0d.npy", &npy::npy_bytes(&[], &[1.5]).unwrap());
    for (descr, bytes) in [("<f8", 8usize), ("<f2", 2)] {
        let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (3,), }}");
        let mut h = dict.into_bytes();
        while (10 + h.len() + 1) % 64 != 0 {
            h.push(b' ');
        }
        h.push(b'\n');
        let mut f = b"\x93NUMPY\x01\x00".to_vec();
        f.extend_from_slice(&(h.len() as u16).to_le_bytes());
        f.extend_from_slice(&h);
        let data: Vec<u8> = match bytes {
            8 => [1.0f64, -2.5, 3.25]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
            _ => [0x3c00u16, 0xc100, 0x4200]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        };
        f.extend_from_slice(&data);
        write(&n, &format!("seed-{}.npy", &descr[1..]), &f);
    }
}
