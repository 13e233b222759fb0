//! What the format tests (tests/formats*.rs) share: reading the golden JSON that
//! scripts/golden_*.py write (hex, f32 bits), the scripts' 2^20-value "stream" and its
//! FNV-1a 64 hash, bit-exact comparisons, NMSE figures and weight builders.
//!
//! Included with `#[path = "common/golden.rs"] mod golden;` (tests/common/mod.rs is the
//! GPU context); not every test file uses every helper.
#![allow(dead_code)]

use serde_json::Value;
use wgquant::format::reference::nmse;
use wgquant::format::Format;
use wgquant::rng::Rng;
use wgquant::QuantizedTensor;

// ---------------------------------------------------------------- golden JSON

/// A golden file's text (`include_str!("data/golden_*.json")`), parsed.
pub fn parse(text: &str) -> Value {
    serde_json::from_str(text).expect("golden JSON parses")
}

/// Bytes from a hex string.
pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// f32 values from a JSON array of their bit patterns.
pub fn f32s_bits(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|b| f32::from_bits(b.as_u64().unwrap() as u32))
        .collect()
}

/// f32 values from the hex of their little-endian bytes.
pub fn f32s_hex(v: &Value) -> Vec<f32> {
    unhex(v.as_str().unwrap())
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

// ---------------------------------------------------------------- formats, quantizing

pub fn format(name: &str) -> Format {
    name.parse().unwrap()
}

/// One row of `x.len()` weights.
pub fn quantize_row(f: Format, x: &[f32]) -> QuantizedTensor {
    QuantizedTensor::quantize(f, x, 1, x.len()).unwrap()
}

// ---------------------------------------------------------------- bit-exact comparisons

/// The same f32, bit for bit (any NaN equals any NaN).
pub fn same_f32(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// `got` is `want`, weight for weight, bit for bit.
pub fn assert_same_f32s(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(same_f32(*a, *b), "{what}: weight {i} is {a}, reference {b}");
    }
}

/// `got` is `want` byte for byte; else a panic that shows the first block (of `bb` bytes)
/// that differs, and `detail(block)` after it.
pub fn assert_blocks_eq_with(
    what: &str,
    got: &[u8],
    want: &[u8],
    bb: usize,
    detail: impl Fn(usize) -> String,
) {
    if got == want {
        return;
    }
    let block = |b: &'_ [u8], i: usize| b.get(i * bb..(i + 1) * bb).unwrap_or(&[]).to_vec();
    match (0..want.len() / bb).find(|&i| block(got, i) != block(want, i)) {
        Some(i) => panic!(
            "{what}: block {i} is {:02x?}, reference {:02x?}{}",
            block(got, i),
            block(want, i),
            detail(i)
        ),
        None => panic!("{what}: {} bytes, reference {}", got.len(), want.len()),
    }
}

/// `got` is `want` byte for byte, blocks of `bb` bytes (the first that differs is shown).
pub fn assert_blocks_eq(what: &str, got: &[u8], want: &[u8], bb: usize) {
    assert_blocks_eq_with(what, got, want, bb, |_| String::new());
}

/// `x` quantized to `f` is the reference bytes `want_hex`; returns the tensor.
pub fn assert_quantizes_to(what: &str, f: Format, x: &[f32], want_hex: &Value) -> QuantizedTensor {
    let q = quantize_row(f, x);
    let want = unhex(want_hex.as_str().unwrap());
    assert_blocks_eq(what, q.bytes(), &want, f.codec().block_bytes());
    q
}

/// A "deviations" entry of golden_blocks.json / golden_legacy.json: gguf-py's block next to
/// ggml's C one. They may differ only in the sign bit of an f16 zero `d` (or `m`, the second
/// half), as numpy's min/max/argmax may pick the other sign of a zero than the C loops.
pub fn assert_only_zero_sign_deviation(d: &Value) {
    let (py, c) = (
        unhex(d["gguf_py"].as_str().unwrap()),
        unhex(d["ggml_c"].as_str().unwrap()),
    );
    assert_eq!(d["case"], "signed_zeros_and_denormal_f32", "{d}");
    assert_eq!(py.len(), c.len());
    for (i, (a, b)) in py.iter().zip(&c).enumerate() {
        let zero_sign = a ^ b == 0x80 && a & 0x7f == 0 && py[i - 1] == 0 && c[i - 1] == 0;
        let ok = a == b || (i % 2 == 1 && i < 4 && zero_sign);
        assert!(ok, "deviation beyond a zero sign: {d}");
    }
}

// ---------------------------------------------------------------- the stream

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The scripts' "stream" (scripts/golden_common.py): exact f32 values from SplitMix64 over
/// magnitudes 2^-34 .. 2^17 (f16-subnormal scales up to f16 overflow), with zero and
/// constant blocks.
pub fn stream(seed: u64, n: usize) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let mut v: Vec<f32> = (0..n)
        .map(|i| {
            let u = rng.next_u64();
            let s: i64 = (0..4).map(|j| ((u >> (16 * j)) & 0xffff) as i64).sum();
            let e = ((7 * (i / 32)) % 52) as i32 - 34;
            (s - 131_070) as f32 * 2f32.powi(-15) * 2f32.powi(e)
        })
        .collect();
    for (b, block) in v.chunks_exact_mut(32).enumerate() {
        if b % 13 == 0 {
            block.fill(0.0);
        }
        if b % 17 == 0 {
            block.fill(block[0]);
        }
    }
    v
}

/// A golden file's "stream" entry: the values it names, and its FNV-1a 64 hashes by format.
pub fn golden_stream(g: &Value) -> (Vec<f32>, &serde_json::Map<String, Value>) {
    let s = &g["stream"];
    let n = s["values"].as_u64().unwrap() as usize;
    let x = stream(s["seed"].as_u64().unwrap(), n);
    (x, s["fnv1a64"].as_object().unwrap())
}

/// The FNV-1a 64 hash (16 hex digits) of `x` quantized to `f` in rows of 1024.
pub fn stream_hash(f: Format, x: &[f32]) -> String {
    let q = QuantizedTensor::quantize(f, x, x.len() / 1024, 1024).unwrap();
    format!("{:016x}", fnv1a64(q.bytes()))
}

// ---------------------------------------------------------------- error

/// NMSE of `got` against the reference `want`, in f64.
pub fn nmse_f32(want: &[f32], got: &[f32]) -> f64 {
    let want: Vec<f64> = want.iter().map(|&v| v as f64).collect();
    nmse(&want, got)
}

/// NMSE of weight-only quantization on 2^20 N(0,1) values.
pub fn measured_nmse(f: Format) -> f64 {
    let x = Rng::new(0x1234_5678).normal_vec(1 << 20);
    let q = QuantizedTensor::quantize(f, &x, 1024, 1024).unwrap();
    nmse_f32(&x, &q.dequantize())
}

/// Every `(format, expected NMSE, relative tolerance)`: [`measured_nmse`] within the
/// tolerance; the figures are printed with `digits` digits after the point.
pub fn assert_nmse_figures(table: &[(Format, f64, f64)], digits: usize) {
    let mut report = Vec::new();
    for &(f, want, tol) in table {
        let got = measured_nmse(f);
        report.push(format!("{f} {got:.digits$e}"));
        assert!(
            (got / want - 1.0).abs() <= tol,
            "{f}: NMSE {got:.digits$e}, expected {want:.3e} +-{:.0}%",
            tol * 100.0
        );
    }
    eprintln!("NMSE on 2^20 N(0,1): {}", report.join(", "));
}

// ---------------------------------------------------------------- weights

/// `rows` x `k` N(0,1) weights (seed 5) for requantization: rows scaled by 1, 1e-2, 37.5 and
/// 0.3 in turn, and among the 32-blocks some all-zero and some constant +-0.8 times the
/// row's scale (all scales in f16's normal range).
pub fn requantization_weights(rows: usize, k: usize) -> Vec<f32> {
    let mut w = Rng::new(5).normal_vec(rows * k);
    for (r, row) in w.chunks_exact_mut(k).enumerate() {
        let scale = [1.0f32, 1e-2, 37.5, 0.3][r % 4];
        for (b, block) in row.chunks_exact_mut(32).enumerate() {
            block.iter_mut().for_each(|v| *v *= scale);
            match (r + b) % 11 {
                3 => block.fill(0.0),
                7 => block.fill(if b % 2 == 0 { 0.8 } else { -0.8 } * scale),
                _ => {}
            }
        }
    }
    w
}
