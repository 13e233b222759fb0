//! The `wgquant` command as a user runs it: every subcommand on the machine's adapter,
//! outputs checked against the library and the CPU reference, and bad input turned into a
//! clear message and a non-zero exit, never a panic.

mod common;

use common::cli::{fails, matmul, ok, s, text, wgquant};
use common::temp::TempDir;

use std::path::{Path, PathBuf};
use wgquant::format::reference::{matmul_f64, nmse};
use wgquant::io::{self, gguf::StoredTensor, Array};
use wgquant::rng::Rng;
use wgquant::{Format, QuantizedTensor};

fn write_model(dir: &Path) -> (PathBuf, Vec<f32>) {
    let mut rng = Rng::new(42);
    let w = rng.normal_vec(72 * 256);
    let tensors = vec![
        (
            "proj.weight".to_string(),
            Array::new(vec![72, 256], w.clone()).unwrap(),
        ),
        (
            "proj.bias".to_string(),
            Array::new(vec![72], rng.normal_vec(72)).unwrap(),
        ),
        (
            "odd.weight".to_string(),
            Array::new(vec![3, 100], rng.normal_vec(300)).unwrap(),
        ),
    ];
    let path = dir.join("model.safetensors");
    io::write_safetensors(&path, &tensors).unwrap();
    (path, w)
}

#[test]
fn quantize_dequantize_and_matmul_round_trip() {
    let dir = TempDir::new("cli-roundtrip");
    let (st, w) = write_model(&dir);
    for format in ["q4_0", "q8_0", "q4_1", "int4_g128", "int8_g64_asym"] {
        let f: Format = format.parse().unwrap();
        let gg = dir.join(format!("{format}.gguf"));
        let (_, err) = ok(&["quantize", s(&st), s(&gg), "--format", format]);
        assert!(err.contains("kept proj.bias"), "{err}");
        assert!(
            err.contains("kept odd.weight") && err.contains("100"),
            "{err}"
        );
        // The file holds exactly the library's quantization of the weight.
        let model = io::read_model(&gg).unwrap();
        let want = QuantizedTensor::quantize(f, &w, 72, 256).unwrap();
        match model.tensor("proj.weight") {
            Some(StoredTensor::Quantized(q)) => assert_eq!(q, &want, "{format}"),
            other => panic!("{format}: proj.weight is {other:?}"),
        }
        // Dequantize to safetensors: the weights the format represents.
        let dq = dir.join(format!("{format}.safetensors"));
        ok(&["dequantize", s(&gg), s(&dq)]);
        let back = io::read_safetensors(&dq).unwrap();
        assert_eq!(back.tensor("proj.weight").unwrap().data, want.dequantize());
        assert_eq!(back.tensor("proj.bias").unwrap().shape, vec![72]);
        // Matmul through GEMV (n = 3) and GEMM (n = 11) against the f64 reference.
        for n in [3usize, 11] {
            let x = Rng::new(n as u64).normal_vec(n * 256);
            let y = matmul(&gg, "proj.weight", &x, (n, 256), &dir);
            assert_eq!(y.shape, vec![n, 72]);
            let e = nmse(&matmul_f64(&want.dequantize(), 72, 256, &x, n), &y.data);
            assert!(e <= 1e-6, "{format} n={n}: NMSE {e:e}");
        }
    }
}

#[test]
fn file_commands_reject_bad_input_clearly() {
    let dir = TempDir::new("cli-bad");
    let (st, _) = write_model(&dir);
    let gg = dir.join("m.gguf");
    ok(&["quantize", s(&st), s(&gg), "--format", "q4_0"]);
    let err = fails(&["quantize", s(&st), s(&gg), "--format", "q3_x"]);
    assert!(err.contains("q4_0"), "the message lists the formats: {err}");
    let err = fails(&[
        "quantize",
        s(&dir.join("missing.safetensors")),
        s(&gg),
        "--format",
        "q4_0",
    ]);
    assert!(err.contains("missing.safetensors"), "{err}");
    let garbage = dir.join("garbage.gguf");
    std::fs::write(&garbage, b"GGUF\x03\x00\x00\x00\xff\xff").unwrap();
    fails(&["dequantize", s(&garbage), s(&dir.join("o.safetensors"))]);
    let xp = dir.join("x.npy");
    io::write_npy(&xp, &[2, 100], &[0.5; 200]).unwrap();
    let yp = dir.join("y.npy");
    let err = fails(&[
        "matmul",
        "--weights",
        s(&gg),
        "--tensor",
        "proj.weight",
        "--input",
        s(&xp),
        "--output",
        s(&yp),
    ]);
    assert!(err.contains("256"), "names the expected K: {err}");
    let err = fails(&[
        "matmul",
        "--weights",
        s(&gg),
        "--tensor",
        "nope",
        "--input",
        s(&xp),
        "--output",
        s(&yp),
    ]);
    assert!(err.contains("proj.weight"), "lists the tensors: {err}");
    std::fs::write(&xp, b"not an npy file").unwrap();
    fails(&[
        "matmul",
        "--weights",
        s(&gg),
        "--tensor",
        "proj.weight",
        "--input",
        s(&xp),
        "--output",
        s(&yp),
    ]);
}

#[test]
fn bench_json_has_the_documented_keys() {
    let (out, _) = ok(&[
        "bench",
        "--format",
        "q4_0",
        "--shape",
        "128x256",
        "--batch",
        "1",
        "--batch",
        "9",
        "--iterations",
        "2",
        "--json",
    ]);
    let rows: serde_json::Value = serde_json::from_str(&out).expect("bench --json prints JSON");
    let rows = rows.as_array().unwrap();
    // f32 and q4_0, two batches, and the same again with f16 activations where the device
    // has SHADER_F16 (kernels gemv_f16 / gemm_f16).
    let f16 = rows
        .iter()
        .filter(|r| r["kernel"].as_str().unwrap().ends_with("_f16"))
        .count();
    assert!(f16 == 0 || f16 == 4, "{out}");
    assert_eq!(rows.len(), 4 + f16, "{out}");
    for r in rows {
        for key in [
            "kernel",
            "format",
            "m",
            "k",
            "n",
            "seconds",
            "gbps",
            "gflops",
            "ratio_to_f32",
            "adapter",
            "statistic",
        ] {
            assert!(r.get(key).is_some(), "missing {key}: {r}");
        }
        assert!(r["seconds"].as_f64().unwrap() > 0.0);
        // The fastest run on CPU adapters (lavapipe), the median on GPUs.
        assert!(["median", "fastest"].contains(&r["statistic"].as_str().unwrap()));
        assert!(r["ratio_to_f32"].as_f64().unwrap() > 0.0, "{r}");
        let kernel = r["kernel"].as_str().unwrap();
        let family = kernel.strip_suffix("_f16").unwrap_or(kernel);
        // gemm_coop: the tensor-core GEMM, where the device has cooperative matrices.
        let family = family.strip_suffix("_coop").unwrap_or(family);
        assert_eq!(family, if r["n"] == 1 { "gemv" } else { "gemm" });
        if r["format"] == "f32" && family == kernel {
            assert_eq!(r["ratio_to_f32"].as_f64().unwrap(), 1.0);
        }
    }
    let err = fails(&["bench", "--shape", "4096"]);
    assert!(err.contains("MxK") || err.contains("4096"), "{err}");
    fails(&["bench", "--format", "q4_0", "--shape", "64x100"]);
}

#[test]
fn bench_jsonl_streams_rows_and_wgquant_disable_drops_f16_variants() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_wgquant"))
        .args([
            "bench",
            "--format",
            "q4_1",
            "--shape",
            "64x256",
            "--batch",
            "2",
            "--iterations",
            "1",
            "--jsonl",
        ])
        .env("WGQUANT_DISABLE", "f16")
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    // f32 and q4_1 at one batch; without SHADER_F16 no gemv_f16 rows.
    let kernels: Vec<_> = rows
        .iter()
        .map(|r| (r["kernel"].as_str().unwrap(), r["format"].as_str().unwrap()))
        .collect();
    assert_eq!(kernels, [("gemv", "f32"), ("gemv", "q4_1")], "{out}");

    let o = std::process::Command::new(env!("CARGO_BIN_EXE_wgquant"))
        .args(["verify", "--format", "q4_0"])
        .env("WGQUANT_DISABLE", "f16,tensor_cores")
        .output()
        .unwrap();
    let (_, err) = text(&o);
    assert!(
        !o.status.success() && err.contains("tensor_cores") && !err.contains("panicked"),
        "{err}"
    );
}

#[test]
fn verify_adapters_and_formats_run() {
    let (out, _) = ok(&["verify", "--format", "q4_1"]);
    assert!(out.contains("passed, 0 failed"), "{out}");
    assert!(out.contains("gemv") && out.contains("gemm") && out.contains("dequantize"));
    let (out, _) = ok(&["adapters"]);
    assert!(out.contains("max_storage_buffer_binding_size"), "{out}");
    let (out, _) = ok(&["formats"]);
    assert!(out.contains("int4_g128_asym"), "{out}");
}

#[test]
fn an_unknown_adapter_is_named_with_the_alternatives() {
    let o = wgquant(&["verify", "--format", "q4_0", "--adapter", "no-such-gpu-xyz"]);
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(
        err.contains("no-such-gpu-xyz") && err.contains("available"),
        "{err}"
    );
}

#[test]
fn static_activation_scales_are_stored_by_quantize_and_applied_by_matmul() {
    let dir = TempDir::new("cli-a8");
    let (st, w) = write_model(&dir);
    let calib = dir.join("calib.npy");
    let x = Rng::new(77).normal_vec(200 * 256);
    io::write_npy(&calib, &[192, 256], &x[..192 * 256]).unwrap();
    let gg = dir.join("q8.gguf");
    ok(&[
        "quantize",
        s(&st),
        s(&gg),
        "--format",
        "q8_0",
        "--calib",
        s(&calib),
        "--act-observer",
        "p99.99",
    ]);
    let model = io::read_model(&gg).unwrap();
    let scales = model
        .metadata("wgquant.act_scales.proj.weight")
        .and_then(|v| v.as_array())
        .expect("static scales stored");
    assert_eq!(scales.len(), 1);
    let q = QuantizedTensor::quantize(Format::Q8_0, &w, 72, 256).unwrap();
    // Held-out rows from the calibration distribution.
    let held = &x[192 * 256..];
    let xp = dir.join("x.npy");
    io::write_npy(&xp, &[8, 256], held).unwrap();
    let want = matmul_f64(&q.dequantize(), 72, 256, held, 8);
    for (mode, bound) in [("int8-dynamic", 1e-3), ("int8-static", 3e-3)] {
        let yp = dir.join(format!("{mode}.npy"));
        ok(&[
            "matmul",
            "--weights",
            s(&gg),
            "--tensor",
            "proj.weight",
            "--input",
            s(&xp),
            "--output",
            s(&yp),
            "--activations",
            mode,
        ]);
        let e = nmse(&want, &io::read_npy(&yp).unwrap().data);
        assert!(e > 0.0 && e <= bound, "{mode}: NMSE {e:e}");
    }
    // Without stored scales, asking for them is a clear error; so is an asymmetric format.
    let plain = dir.join("plain.gguf");
    ok(&["quantize", s(&st), s(&plain), "--format", "q4_1"]);
    let yp = dir.join("y.npy");
    let err = fails(&[
        "matmul",
        "--weights",
        s(&plain),
        "--tensor",
        "proj.weight",
        "--input",
        s(&xp),
        "--output",
        s(&yp),
        "--activations",
        "int8-static",
    ]);
    assert!(err.contains("act-observer"), "{err}");
    fails(&[
        "matmul",
        "--weights",
        s(&plain),
        "--tensor",
        "proj.weight",
        "--input",
        s(&xp),
        "--output",
        s(&yp),
        "--activations",
        "int8-dynamic",
    ]);
    let err = fails(&[
        "quantize",
        s(&st),
        s(&gg),
        "--format",
        "q8_0",
        "--act-observer",
        "mse",
    ]);
    assert!(err.contains("--calib"), "{err}");
}
