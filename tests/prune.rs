//! Pruning with quantization (src/quantize/prune.rs, `quantize_pruned`) on a layer with
//! correlated inputs, the 2:4 formats' GPTQ (SparseGPT), typed errors, and the
//! `quantize --prune` command through to a GPU matmul.

mod common;

use common::cli::{fails, matmul, ok, s};
use common::temp::TempDir;
use wgquant::format::reference::{matmul_f64, nmse};
use wgquant::format::SparseFormat;
use wgquant::io::{self, gguf::StoredTensor, Array};
use wgquant::quantize::prune::{Pattern, PruneMethod};
use wgquant::quantize::{self, Activations, InputStats, Method, Prune};
use wgquant::rng::Rng;
use wgquant::{Error, Format};

/// Inputs with correlated columns of unequal scale (as a model's are): `x = z A diag(s)`,
/// one `A` for every sample set (`seed` draws `z`).
fn activations(seed: u64, n: usize, k: usize) -> Activations {
    let mut rng = Rng::new(1234);
    let a: Vec<f32> = (0..k * k)
        .map(|_| rng.normal() as f32 / (k as f32).sqrt())
        .collect();
    let scale: Vec<f32> = (0..k)
        .map(|j| 1.0 + 9.0 * ((j * 7919) % k) as f32 / k as f32)
        .collect();
    let mut x = vec![0f32; n * k];
    let mut zrng = Rng::new(seed + 100);
    for r in 0..n {
        let z: Vec<f32> = (0..k).map(|_| zrng.normal() as f32).collect();
        for j in 0..k {
            let v: f32 = (0..k).map(|i| z[i] * a[i * k + j]).sum();
            x[r * k + j] = (v + 0.3 * z[j]) * scale[j];
        }
    }
    Activations::new(n, k, x).unwrap()
}

fn s24() -> Format {
    Format::Sparse24(SparseFormat::new(4, 128))
}

#[test]
fn sparsegpt_beats_wanda_and_magnitude_in_the_2of4_format() {
    let (rows, k) = (96, 256);
    let w = Rng::new(1).normal_vec(rows * k);
    let calib = activations(2, 768, k);
    let held = activations(3, 256, k);
    let out_err =
        |q: &quantize::Quantized| quantize::output_nmse(&held, &w, &q.tensor.dequantize(), rows, k);
    let run = |method: Method, how: PruneMethod| {
        let prune = Prune {
            pattern: Pattern::TWO_FOUR,
            method: how,
        };
        let stats = InputStats::for_pruning(method, prune, &calib);
        quantize::quantize_pruned(s24(), method, prune, &w, rows, k, &stats).unwrap()
    };
    let magnitude = out_err(&run(Method::Rtn, PruneMethod::Magnitude));
    let wanda = out_err(&run(Method::Rtn, PruneMethod::Wanda));
    let masked_gptq = out_err(&run(Method::GPTQ, PruneMethod::Magnitude));
    let sparsegpt = run(Method::GPTQ, PruneMethod::SparseGpt);
    let sg = out_err(&sparsegpt);
    println!("output NMSE: magnitude {magnitude:.4}, wanda {wanda:.4}, magnitude + gptq {masked_gptq:.4}, sparsegpt + gptq {sg:.4}");
    assert!(wanda < magnitude, "{wanda} vs {magnitude}");
    assert!(masked_gptq < magnitude, "{masked_gptq} vs {magnitude}");
    assert!(
        sg < 0.8 * wanda && sg < masked_gptq,
        "{sg} vs {wanda}, {masked_gptq}"
    );
    // Every group of four holds at most two nonzeros.
    for g in sparsegpt.tensor.dequantize().chunks_exact(4) {
        assert!(g.iter().filter(|v| **v != 0.0).count() <= 2);
    }
    // Plain GPTQ on a 2:4 format is SparseGPT; RTN is magnitude pruning.
    let gptq = quantize::quantize(s24(), Method::GPTQ, &w, rows, k, Some(&calib)).unwrap();
    assert_eq!(gptq.tensor, sparsegpt.tensor);
    let rtn = quantize::quantize(s24(), Method::Rtn, &w, rows, k, None).unwrap();
    assert_eq!(out_err(&rtn), magnitude);
}

#[test]
fn dense_formats_store_pruned_weights_as_zeros() {
    let (rows, k) = (64, 256);
    let w = Rng::new(4).normal_vec(rows * k);
    let calib = activations(5, 512, k);
    for (pattern, zeros_per_row) in [("4:8", 128), ("50%", 128), ("2:4", 128)] {
        let prune = Prune {
            pattern: pattern.parse().unwrap(),
            method: PruneMethod::SparseGpt,
        };
        let stats = InputStats::for_pruning(Method::GPTQ, prune, &calib);
        let q = quantize::quantize_pruned(Format::Q4_0, Method::GPTQ, prune, &w, rows, k, &stats)
            .unwrap();
        for row in q.tensor.dequantize().chunks_exact(k) {
            let zeros = row.iter().filter(|v| **v == 0.0).count();
            assert!(zeros >= zeros_per_row, "{pattern}: {zeros}");
        }
    }
}

#[test]
fn pruning_errors_are_typed() {
    let (rows, k) = (8, 256);
    let w = Rng::new(6).normal_vec(rows * k);
    let none = InputStats::default();
    let prune = |p: &str, m| Prune {
        pattern: p.parse().unwrap(),
        method: m,
    };
    let e = quantize::quantize_pruned(
        s24(),
        Method::Rtn,
        prune("4:8", PruneMethod::Magnitude),
        &w,
        rows,
        k,
        &none,
    )
    .unwrap_err();
    assert!(
        matches!(e, Error::InvalidArgument(_)) && e.to_string().contains("2:4"),
        "{e}"
    );
    for m in [PruneMethod::Wanda, PruneMethod::SparseGpt] {
        let e = quantize::quantize_pruned(
            Format::Q4_0,
            Method::Rtn,
            prune("2:4", m),
            &w,
            rows,
            k,
            &none,
        )
        .unwrap_err();
        assert!(matches!(e, Error::MissingCalibration { .. }), "{m}: {e}");
    }
    let act_order = Method::Gptq {
        damp: 0.01,
        block: 128,
        act_order: true,
        static_groups: true,
    };
    let stats = InputStats::for_pruning(
        act_order,
        prune("2:4", PruneMethod::SparseGpt),
        &activations(7, 64, k),
    );
    let e = quantize::quantize_pruned(
        Format::Q4_0,
        act_order,
        prune("2:4", PruneMethod::SparseGpt),
        &w,
        rows,
        k,
        &stats,
    )
    .unwrap_err();
    assert!(e.to_string().contains("act-order"), "{e}");
    // 3:8 does not divide a row of 100 into whole groups.
    let e = quantize::quantize_pruned(
        Format::F32,
        Method::Rtn,
        prune("3:8", PruneMethod::Magnitude),
        &w[..800],
        8,
        100,
        &none,
    )
    .unwrap_err();
    assert!(e.to_string().contains("8"), "{e}");
    let mut bad = w.clone();
    bad[3] = f32::NAN;
    let e = quantize::quantize_pruned(
        Format::Q4_0,
        Method::Rtn,
        prune("2:4", PruneMethod::Magnitude),
        &bad,
        rows,
        k,
        &none,
    )
    .unwrap_err();
    assert!(e.to_string().contains("finite"), "{e}");
}

#[test]
fn quantize_prune_command_writes_a_file_the_gpu_runs() {
    let dir = TempDir::new("cli-prune");
    let (rows, k) = (72, 256);
    let w = Rng::new(8).normal_vec(rows * k);
    let st = dir.join("m.safetensors");
    io::write_safetensors(
        &st,
        &[(
            "proj.weight".to_string(),
            Array::new(vec![rows, k], w.clone()).unwrap(),
        )],
    )
    .unwrap();
    let calib = activations(9, 256, k);
    let xp = dir.join("calib.npy");
    io::write_npy(&xp, &[256, k], calib.data()).unwrap();
    let gg = dir.join("p.gguf");
    let (_, err) = ok(&[
        "quantize",
        s(&st),
        s(&gg),
        "-f",
        "int4_g128_2of4",
        "-m",
        "gptq",
        "--calib",
        s(&xp),
        "--prune",
        "2:4",
        "--prune-method",
        "sparsegpt",
    ]);
    assert!(err.contains("proj.weight"), "{err}");
    let model = io::read_model(&gg).unwrap();
    let Some(StoredTensor::Quantized(q)) = model.tensor("proj.weight") else {
        panic!("proj.weight is not quantized")
    };
    assert_eq!(q.format(), s24());
    for n in [1usize, 5, 9, 20] {
        let x = Rng::new(n as u64).normal_vec(n * k);
        let y = matmul(&gg, "proj.weight", &x, (n, k), &dir);
        assert_eq!(y.shape, vec![n, rows]);
        let e = nmse(&matmul_f64(&q.dequantize(), rows, k, &x, n), &y.data);
        assert!(e <= 1e-6, "n = {n}: NMSE {e:e}");
    }
    // A model's embedding is never pruned, even by the file path; a tensor already in the
    // target format is pruned, not copied.
    let named = dir.join("named.safetensors");
    let arr = |v: &[f32]| Array::new(vec![rows, k], v.to_vec()).unwrap();
    io::write_safetensors(
        &named,
        &[
            ("token_embd.weight".to_string(), arr(&w)),
            ("blk.0.ffn_up.weight".to_string(), arr(&w)),
        ],
    )
    .unwrap();
    let q4 = dir.join("q4.gguf");
    ok(&["quantize", s(&named), s(&q4), "-f", "q4_0"]);
    let pruned = dir.join("pruned.gguf");
    ok(&[
        "quantize",
        s(&q4),
        s(&pruned),
        "-f",
        "q4_0",
        "--prune",
        "2:4",
    ]);
    let model = io::read_model(&pruned).unwrap();
    let zeros = |name: &str| match model.tensor(name) {
        Some(StoredTensor::Quantized(q)) => q.dequantize().iter().filter(|v| **v == 0.0).count(),
        other => panic!("{name}: {other:?}"),
    };
    assert!(zeros("blk.0.ffn_up.weight") >= rows * k / 2);
    assert!(zeros("token_embd.weight") < rows * k / 4);
    // Bad input: a clear message, no file.
    let bad = dir.join("bad.gguf");
    for (args, want) in [
        (vec!["-f", "int4_g128_2of4", "--prune", "4:8"], "2:4"),
        (vec!["-f", "q4_0", "--prune", "5:4"], "5:4"),
        (
            vec!["-f", "q4_0", "--prune", "2:4", "--prune-method", "wanda"],
            "calibration",
        ),
        (vec!["-f", "q4_0", "--prune-method", "wanda"], "--prune"),
    ] {
        let mut all = vec!["quantize", s(&st), s(&bad)];
        all.extend(args.iter().copied());
        let err = fails(&all);
        assert!(
            err.to_lowercase().contains(&want.to_lowercase()),
            "{args:?}: {err}"
        );
        assert!(!bad.exists(), "{args:?}");
    }
}
