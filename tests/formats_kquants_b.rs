//! Q6_K and Q2_K on the CPU: bit-exactness against the GGUF reference
//! (tests/data/golden_kquants_b.json, made by scripts/golden_kquants_b.py), quantization
//! error, edge blocks, the CPU <-> shader plane contract, and bad input.

#[path = "common/golden.rs"]
mod golden;

use golden::{assert_same_f32s, f32s_hex, format, nmse_f32, quantize_row, same_f32, unhex};
use half::f16;
use wgquant::format::reference::nmse;
use wgquant::format::{Codec, Format, Q2_K, Q6_K};
use wgquant::rng::Rng;
use wgquant::{Error, QuantizedTensor};

const FORMATS: [Format; 2] = [Format::Q6_K, Format::Q2_K];

fn golden() -> serde_json::Value {
    golden::parse(include_str!("data/golden_kquants_b.json"))
}

// ---------------------------------------------------------------- golden

/// gguf-py's `dequantize` of arbitrary blocks (random codes and scales, f16 scales from
/// subnormal to 65504, negative Q6_K `d`, all-0x00 and all-0xff blocks), bit for bit.
#[test]
fn golden_dequantize_matches_gguf_py() {
    let g = golden();
    let mut seen = [0; 2];
    for e in g["dequant"].as_array().unwrap() {
        let f = format(e["format"].as_str().unwrap());
        let block = unhex(e["block"].as_str().unwrap());
        assert_eq!(block.len(), f.codec().block_bytes());
        let mut out = vec![0f32; 256];
        f.codec().dequantize_block(&block, &mut out);
        assert_same_f32s(
            &format!("{f} block {}", e["block"]),
            &out,
            &f32s_hex(&e["values"]),
        );
        seen[(f == Format::Q2_K) as usize] += 1;
    }
    assert!(
        seen.iter().all(|&n| n >= 10),
        "too few golden blocks: {seen:?}"
    );
}

/// The blocks of the script's independent port of ggml's reference quantizers, byte for
/// byte, and gguf-py's dequantization of them.
#[test]
fn golden_quantize_matches_ggml_reference() {
    let g = golden();
    let mut checked = 0;
    for case in g["quant"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let x = f32s_hex(&case["x"]);
        for (f, hex) in case["blocks"].as_object().unwrap() {
            let f = format(f);
            let q = golden::assert_quantizes_to(&format!("{name} / {f}"), f, &x, hex);
            assert_same_f32s(
                &format!("{name} / {f}"),
                &q.dequantize(),
                &f32s_hex(&case["dequant"][f.to_string()]),
            );
            checked += 1;
        }
    }
    assert!(checked >= 2 * 10, "too few golden cases: {checked}");
}

// ---------------------------------------------------------------- layout

#[test]
fn layout_constants() {
    assert_eq!((Q6_K.block_values(), Q6_K.block_bytes()), (256, 210));
    assert_eq!((Q2_K.block_values(), Q2_K.block_bytes()), (256, 84));
    assert_eq!(Format::Q6_K.bits_per_weight(), 6.5625);
    assert_eq!(Format::Q2_K.bits_per_weight(), 2.625);
    assert_eq!((Q6_K.word_values(), Q2_K.word_values()), (8, 16));
    for f in FORMATS {
        assert_eq!(f.k_multiple(), 256, "{f}");
        let t = f.codec().ggml_type().unwrap();
        assert_eq!(t.block_layout(), (256, f.codec().block_bytes()));
        assert_eq!(Format::from_ggml_type(t), Some(f));
    }
}

/// Hand-built blocks: where each weight's bits and scale live.
#[test]
fn documented_block_layout() {
    // Q6_K: weight 128h + 32k + l: low nibble of ql[64h + l + 32 (k & 1)] (high nibble for
    // k >= 2), bits 2k.. of qh[32h + l]; w = d * scales[i / 16] * (q - 32).
    let mut b = [0u8; 210];
    b[192..208].copy_from_slice(&std::array::from_fn::<u8, 16, _>(|j| (j as i8 - 8) as u8));
    b[208..].copy_from_slice(&f16::from_f32(0.5).to_le_bytes());
    b[64 + 32 + 5] = 0x9 << 4; // h = 1, k = 3, l = 5: weight 229 low bits 9
    b[128 + 32 + 5] = 0b10 << 6; // its high bits 2: q = 41
    b[7] = 0x3; // h = 0, k = 0, l = 7: weight 7 low bits 3, high 0: q = 3
    let mut w = [0f32; 256];
    Q6_K.dequantize_block(&b, &mut w);
    assert_eq!(w[229], 0.5 * (229 / 16 - 8) as f32 * (41 - 32) as f32);
    assert_eq!(w[7], 0.5 * -8.0 * (3 - 32) as f32);
    assert_eq!(w[8], 0.5 * -8.0 * -32.0);
    // Q2_K: weight 128h + 32k + l is bits 2k.. of qs[32h + l];
    // w = d * (sc & 15) * q - dmin * (sc >> 4).
    let mut b = [0u8; 84];
    for (j, s) in b[..16].iter_mut().enumerate() {
        *s = (j as u8) | ((15 - j as u8) << 4);
    }
    b[16 + 32 + 9] = 0b11 << 4; // h = 1, k = 2, l = 9: weight 201, q = 3
    b[80..82].copy_from_slice(&f16::from_f32(0.25).to_le_bytes());
    b[82..84].copy_from_slice(&f16::from_f32(2.0).to_le_bytes());
    Q2_K.dequantize_block(&b, &mut w);
    assert_eq!(w[201], 0.25 * 12.0 * 3.0 - 2.0 * 3.0);
    assert_eq!(w[0], -2.0 * 15.0);
    assert_eq!(w[200], -2.0 * 3.0);
}

// ---------------------------------------------------------------- error

/// NMSE on 2^20 N(0,1) values within 15% of ggml's figures (docs: formats.md).
#[test]
fn nmse_matches_ggml() {
    let n = 1 << 20;
    let x = Rng::new(1234).normal_vec(n);
    let want: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    for (f, reference) in [(Format::Q6_K, 3.36e-4), (Format::Q2_K, 8.4e-2)] {
        let q = QuantizedTensor::quantize(f, &x, n / 4096, 4096).unwrap();
        let e = nmse(&want, &q.dequantize());
        eprintln!("{f}: NMSE {e:.4e} (ggml {reference:.3e})");
        assert!(
            (e - reference).abs() <= 0.15 * reference,
            "{f}: NMSE {e:.4e}, ggml {reference:.3e}"
        );
    }
}

/// Scaling the input by a power of two scales the blocks' f16 scales and nothing else
/// (while the scales stay normal f16), so the error is scale-free.
#[test]
fn power_of_two_scaling_commutes() {
    let x = Rng::new(77).normal_vec(1024);
    for f in FORMATS {
        let a = quantize_row(f, &x).dequantize();
        let x4: Vec<f32> = x.iter().map(|v| v * 4.0).collect();
        let b = quantize_row(f, &x4).dequantize();
        for (i, (p, q)) in a.iter().zip(&b).enumerate() {
            assert_eq!(p * 4.0, *q, "{f}: weight {i}");
        }
    }
}

// ---------------------------------------------------------------- edge blocks

#[test]
fn zero_block_is_all_zero_bytes() {
    for f in FORMATS {
        for zero in [0.0f32, -0.0] {
            let q = quantize_row(f, &[zero; 512]);
            assert!(q.bytes().iter().all(|&b| b == 0), "{f}: {:02x?}", q.bytes());
            assert!(q.dequantize().iter().all(|&v| v == 0.0), "{f}");
        }
    }
}

#[test]
fn huge_outlier_is_kept() {
    let mut x: Vec<f32> = Rng::new(3)
        .normal_vec(256)
        .iter()
        .map(|v| v * 0.01)
        .collect();
    x[100] = 3.0e4;
    x[7] = -2.0e3;
    for f in FORMATS {
        let d = quantize_row(f, &x).dequantize();
        assert!(d.iter().all(|v| v.is_finite()), "{f}");
        let rel = (d[100] - x[100]).abs() / x[100];
        assert!(rel < 0.02, "{f}: outlier {} -> {}", x[100], d[100]);
        // The rest can only lose precision to the outlier's scale, never blow up.
        let bound = match f {
            Format::Q6_K => 0.02 * 3.0e4,
            _ => 0.5 * 3.0e4,
        };
        for (i, (a, b)) in x.iter().zip(&d).enumerate() {
            assert!((a - b).abs() <= bound, "{f}: weight {i}: {a} -> {b}");
        }
    }
}

/// Values so small that the f16 super-block scale underflows: everything reads as zero
/// (finite), and slightly larger ones still quantize with relative precision.
#[test]
fn tiny_values() {
    let n = Rng::new(4).normal_vec(256);
    for f in FORMATS {
        let x: Vec<f32> = n.iter().map(|v| v * 1e-10).collect();
        let d = quantize_row(f, &x).dequantize();
        assert!(d.iter().all(|v| v.is_finite() && v.abs() <= 1e-8), "{f}");
        // Scales in the normal f16 range: the usual relative error.
        let x: Vec<f32> = n.iter().map(|v| v * 1e-2).collect();
        let e = nmse_f32(&x, &quantize_row(f, &x).dequantize());
        assert!(e < [1e-3, 0.15][(f == Format::Q2_K) as usize], "{f}: {e}");
    }
}

/// Requantizing dequantized weights stays close to them. Neither ggml quantizer is
/// idempotent (the scale search can pick a slightly different scale for data already on a
/// grid), so this bounds the drift at about 10x what these inputs show (Q6_K 9.3e-7,
/// Q2_K 1.7e-5) instead of asking for equal bytes.
#[test]
fn requantization_stays_close() {
    let mut x = Rng::new(5).normal_vec(4096);
    for (b, block) in x.chunks_exact_mut(16).enumerate() {
        block
            .iter_mut()
            .for_each(|v| *v *= [1.0, 0.3, 2.5, 0.05][b % 4]);
    }
    for f in FORMATS {
        let d1 = quantize_row(f, &x).dequantize();
        let d2 = quantize_row(f, &d1).dequantize();
        let e = nmse_f32(&d1, &d2);
        eprintln!("{f}: requantization NMSE {e:.3e}");
        assert!(e < [1e-5, 2e-4][(f == Format::Q2_K) as usize], "{f}: {e}");
    }
}

#[test]
fn non_finite_inputs_stay_contained() {
    // ggml's reference makes no promises here; wgquant must not panic.
    for f in FORMATS {
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e38] {
            let mut x = Rng::new(6).normal_vec(256);
            x[17] = bad;
            let _ = quantize_row(f, &x).dequantize();
        }
    }
}

// ---------------------------------------------------------------- GPU planes

fn f16_bits(h: u32) -> f32 {
    f16::from_bits(h as u16).to_f32()
}

/// Rebuild every weight from `gpu_planes` by the rules the WGSL files use, and compare bit
/// for bit with the CPU dequantization.
#[test]
fn gpu_planes_follow_the_shader_contract() {
    let (rows, k) = (3, 768);
    let mut x = Rng::new(8).normal_vec(rows * k);
    x[300..600].iter_mut().for_each(|v| *v *= 1e-3);
    x[1000..1256].fill(0.0);
    for f in FORMATS {
        let c = f.codec();
        let q = QuantizedTensor::quantize(f, &x, rows, k).unwrap();
        let want = q.dequantize();
        let (codes, params) = q.gpu_planes(0..rows);
        let blocks = k / 256;
        let row_words = (blocks * c.param_halves()).div_ceil(2);
        let cw = k / c.word_values();
        assert_eq!(codes.len(), rows * cw, "{f}");
        assert_eq!(params.len(), rows * row_words, "{f}");
        for r in 0..rows {
            let p = &params[r * row_words..][..row_words];
            for i in 0..k {
                let (b, ib) = (i / 256, i % 256);
                let word = codes[r * cw + i / c.word_values()];
                let got = if f == Format::Q6_K {
                    let base = 21 * b;
                    let lo = (word >> (4 * (i % 8))) & 15;
                    let hi = (p[base + ib / 16] >> (2 * (ib % 16))) & 3;
                    let s = (p[base + 16 + ib / 64] >> (8 * ((ib / 16) % 4))) as u8 as i8;
                    let d = f16_bits(p[base + 20] & 0xffff);
                    assert_eq!(p[base + 20] >> 16, 0);
                    (d * s as f32) * ((lo | hi << 4) as f32 - 32.0)
                } else {
                    let base = 5 * b;
                    let qv = (word >> (2 * (i % 16))) & 3;
                    let sc = (p[base + ib / 64] >> (8 * ((ib / 16) % 4))) & 255;
                    let (d, m) = (f16_bits(p[base + 4] & 0xffff), f16_bits(p[base + 4] >> 16));
                    (d * (sc & 15) as f32) * qv as f32 - m * (sc >> 4) as f32
                };
                assert!(same_f32(got, want[r * k + i]), "{f}: row {r} weight {i}");
            }
        }
    }
}

// ---------------------------------------------------------------- bad input

#[test]
fn bad_k_is_block_mismatch() {
    for f in FORMATS {
        for k in [0, 16, 128, 255, 257, 384, 1000] {
            let x = vec![0.5f32; k * 2];
            match QuantizedTensor::quantize(f, &x, 2, k) {
                Err(Error::BlockMismatch {
                    k: got, multiple, ..
                }) => {
                    assert_eq!((got, multiple), (k, 256), "{f}")
                }
                other => panic!("{f} k = {k}: {other:?}"),
            }
        }
        assert!(matches!(
            QuantizedTensor::from_bytes(f, 1, 100, vec![0; 100]),
            Err(Error::BlockMismatch { .. })
        ));
        // Right k, wrong byte count.
        let bb = f.codec().block_bytes();
        assert!(matches!(
            QuantizedTensor::from_bytes(f, 1, 512, vec![0; 2 * bb - 1]),
            Err(Error::Shape(_))
        ));
        assert!(QuantizedTensor::from_bytes(f, 1, 512, vec![0; 2 * bb]).is_ok());
    }
}
