//! Whole-model quantization (src/llama/quantize.rs, mixed.rs, calibrate.rs) on small random
//! llama models: every method against RTN on held-out tokens, AWQ's folding, the
//! importance matrix file, mixed precision under a budget, the CPU scorer against the GPU
//! model, the `quantize --calib-text` / `imatrix` / `perplexity --cpu` commands, and on
//! SmolLM2 (when present) a short calibration of the real model.

mod common;

use common::cli::{fails, ok, s};
use common::temp::TempDir;
use wgquant::io::gguf::{self, StoredTensor};
use wgquant::llama::calibrate::{
    BlockF32, CalibTokens, CalibrationPass, CpuScorer, Input, Linear, Observe,
};
use wgquant::llama::mixed::{self, PlanOptions};
use wgquant::llama::quantize::{self as mq, Options, Progress};
use wgquant::llama::synthetic::TinyLlama;
use wgquant::llama::{GpuModel, GpuModelOptions, Weights};
use wgquant::quantize::{Imatrix, Method};
use wgquant::rng::Rng;
use wgquant::{Error, Format};

/// A model whose weights are f32 (so no quantized format is its source), wide enough for
/// the 32-blocks: width 128, FFN 256, 4 heads on 2 key/value heads.
fn spec(seed: u64) -> TinyLlama {
    TinyLlama {
        n_layers: 2,
        d_model: 128,
        n_heads: 4,
        n_kv_heads: 2,
        d_ff: 256,
        vocab: 300,
        format: Format::F32,
        embedding_format: Format::F32,
        tied: true,
        seed,
    }
}

fn weights(spec: &TinyLlama) -> Weights {
    let (meta, tensors) = spec.build().unwrap();
    let bytes = gguf::model_bytes(&meta, &tensors).unwrap();
    Weights::from_gguf(gguf::read_model_bytes(&bytes).unwrap()).unwrap()
}

/// Token sequences whose statistics are not white: tokens drawn from a skewed
/// distribution with a few frequent ones (as text has).
fn tokens(seed: u64, seqs: usize, len: usize, vocab: usize) -> CalibTokens {
    let mut rng = Rng::new(seed);
    CalibTokens::new(
        (0..seqs)
            .map(|_| {
                (0..len)
                    .map(|_| {
                        let u = rng.uniform();
                        ((u * u * u) * vocab as f64) as u32
                    })
                    .collect()
            })
            .collect(),
    )
    .unwrap()
}

/// The models' logits on `held` by the CPU pass.
fn logits(w: &Weights, held: &CalibTokens) -> Vec<f32> {
    let mut pass = CalibrationPass::new(w, held).unwrap();
    for l in 0..w.config.n_layers {
        let mut b = BlockF32::from_weights(w, l);
        pass.run_block(&mut b, &mut Observe(|_, _| Ok(())), true)
            .unwrap();
    }
    let head = pass.head_input(&w.output_norm);
    let out = w.output_matrix();
    wgquant::linalg::matmul_nt(
        wgquant::linalg::View::new(&head, pass.tokens(), w.config.d_model),
        wgquant::linalg::View::new(&out.dequantize(), out.rows(), out.k()),
    )
}

fn nmse(want: &[f32], got: &[f32]) -> f64 {
    let num: f64 = want
        .iter()
        .zip(got)
        .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
        .sum();
    num / want.iter().map(|&a| (a as f64).powi(2)).sum::<f64>()
}

/// The quantized model as `Weights` (written to GGUF bytes and read back, as a user would).
fn as_weights(src: &Weights, q: &mq::QuantizedModel) -> Weights {
    let tensors: Vec<(String, StoredTensor)> = q
        .tensors
        .iter()
        .map(|(n, t)| (n.clone(), t.clone()))
        .collect();
    let bytes = gguf::model_bytes(&src.metadata, &tensors).unwrap();
    Weights::from_gguf(gguf::read_model_bytes(&bytes).unwrap()).unwrap()
}

fn quantize(w: &Weights, calib: Option<&CalibTokens>, opts: &Options) -> mq::QuantizedModel {
    mq::quantize_model(w, calib, opts, &mut |_| {}).unwrap()
}

/// Without calibration, RTN of a model is RTN of each matrix; every matrix is reported.
#[test]
fn rtn_is_per_matrix_rtn() {
    let w = weights(&spec(1));
    let q = quantize(&w, None, &Options::new(Format::Q4_0, Method::Rtn));
    assert_eq!(q.reports.len(), 1 + 7 * 2);
    for (l, lw) in w.layers.iter().enumerate() {
        let want = wgquant::QuantizedTensor::quantize(
            Format::Q4_0,
            &lw.w_up.dequantize(),
            lw.w_up.rows(),
            lw.w_up.k(),
        )
        .unwrap();
        match &q.tensors[&Linear::Up.tensor_name(l)] {
            StoredTensor::Quantized(got) => assert_eq!(got, &want),
            other => panic!("{other:?}"),
        }
    }
    assert!(q.imatrix.is_none());
    let bpw = q.bits_per_weight();
    assert!(bpw > 4.5 && bpw < 5.0, "{bpw}");
    // Rows that do not fit the format (128 for the 256-blocks of q4_k; ffn_down's 256
    // do) stay f32, as `quantize` does for files, and the model still reads.
    let k = quantize(&w, None, &Options::new(Format::Q4_K, Method::Rtn));
    for r in &k.reports {
        let kept = r.how.starts_with("kept as f32");
        assert_eq!(kept, r.k % 256 != 0, "{r:?}");
        assert_eq!(r.format, if kept { Format::F32 } else { Format::Q4_K });
    }
    let back = as_weights(&w, &k);
    assert_eq!(back.layers[0].wq.format(), Format::F32);
    assert_eq!(back.layers[0].wq.dequantize(), w.layers[0].wq.dequantize());
}

/// The calibrated methods cut the model's error on held-out tokens below RTN's, for the
/// formats the goals name; every matrix of the file is in its format, and the file runs on
/// the GPU with the same logits as on the CPU.
#[test]
fn calibrated_methods_beat_rtn_on_held_out_tokens() {
    let w = weights(&spec(3));
    let calib = tokens(5, 8, 64, 300);
    let held = tokens(6, 4, 64, 300);
    let want = logits(&w, &held);
    let act_order = Method::Gptq {
        damp: 0.01,
        block: 128,
        act_order: true,
        static_groups: true,
    };
    for f in [
        Format::Q4_0,
        Format::Int(wgquant::format::IntFormat::new(4, 32, true)),
        Format::IQ4_NL,
        Format::Q5_0,
    ] {
        let rtn = quantize(&w, Some(&calib), &Options::new(f, Method::Rtn));
        let e_rtn = nmse(&want, &logits(&as_weights(&w, &rtn), &held));
        // Every method on q4_0; the best two on the others (the test's time).
        let methods: &[Method] = if f == Format::Q4_0 {
            &[Method::GPTQ, act_order, Method::AWQ, Method::Imatrix]
        } else {
            &[act_order, Method::Imatrix]
        };
        for &m in methods {
            let q = quantize(&w, Some(&calib), &Options::new(f, m));
            let qw = as_weights(&w, &q);
            for l in &qw.layers {
                assert_eq!(l.w_down.format(), f);
            }
            let e = nmse(&want, &logits(&qw, &held));
            println!(
                "{f:14} {m:50} logits NMSE {e:.3e} (rtn {e_rtn:.3e}, {:.3}x)",
                e / e_rtn
            );
            assert!(e < e_rtn, "{f} {m}: {e:e} vs rtn {e_rtn:e}");
            if m == Method::AWQ {
                // Folded, not stored: no scale tensors, and the norms changed.
                assert!(q.tensors.keys().all(|n| !n.contains("awq")));
            }
        }
    }
}

/// AWQ's folding keeps the unquantized model's function: scales folded into every group of
/// a block (with the key/value ties), same hidden states.
#[test]
fn folding_scales_keeps_the_function() {
    let spec = spec(7);
    let w = weights(&spec);
    let toks = tokens(1, 2, 40, 300);
    let mut a = CalibrationPass::new(&w, &toks).unwrap();
    let mut b = CalibrationPass::new(&w, &toks).unwrap();
    let c = &w.config;
    let mut rng = Rng::new(2);
    for l in 0..c.n_layers {
        let mut plain = BlockF32::from_weights(&w, l);
        let mut folded = plain.clone();
        for input in Input::ALL {
            let k = input.width(c);
            let mut s: Vec<f32> = (0..k).map(|_| (0.5 + rng.uniform()) as f32).collect();
            if input == Input::AttentionOutput {
                // One scale per key/value channel, shared by the heads of its group.
                let (g, hd) = (c.n_heads / c.n_kv_heads, c.head_dim);
                for h in 0..c.n_heads {
                    for i in 0..hd {
                        s[h * hd + i] = s[(h / g) * g * hd + i];
                    }
                }
            }
            let changed =
                mq::fold_scales(&mut folded, input, &s, c.n_heads / c.n_kv_heads, c.head_dim);
            assert!(changed.len() >= input.linears().len());
        }
        assert_ne!(plain, folded);
        a.run_block(&mut plain, &mut Observe(|_, _| Ok(())), true)
            .unwrap();
        b.run_block(&mut folded, &mut Observe(|_, _| Ok(())), true)
            .unwrap();
        let e = nmse(a.hidden(), b.hidden());
        assert!(e < 1e-10, "layer {l}: {e:e}");
    }
}

/// The pass's importance matrix is that of the inputs it saw; it round-trips through its
/// file; a stored one drives `--method imatrix` without calibration text.
#[test]
fn importance_matrix_from_the_pass_and_from_a_file() {
    let w = weights(&spec(9));
    let calib = tokens(3, 4, 48, 300);
    let q = quantize(
        &w,
        Some(&calib),
        &Options::new(Format::Q4_0, Method::Imatrix),
    );
    let m = q.imatrix.clone().unwrap();
    assert_eq!(m.len(), 1 + 7 * 2);
    // Q, K and V read one input: the same importance.
    let imp = |n: &str| m.get(n).unwrap().importance();
    assert_eq!(imp("blk.0.attn_q.weight"), imp("blk.0.attn_v.weight"));
    assert_eq!(m.get("blk.1.ffn_down.weight").unwrap().count, 4 * 48);
    // The first block's Q input is the float model's (nothing before it is quantized).
    let mut pass = CalibrationPass::new(&w, &calib).unwrap();
    let mut first = None;
    let mut b = BlockF32::from_weights(&w, 0);
    pass.run_block(
        &mut b,
        &mut Observe(|i, x: &[f32]| {
            if i == Input::Attention {
                first = Some(wgquant::quantize::importance(x, 128));
            }
            Ok(())
        }),
        false,
    )
    .unwrap();
    let direct = first.unwrap();
    for (a, b) in direct.iter().zip(imp("blk.0.attn_q.weight")) {
        assert!((a - b).abs() <= 1e-5 * a.abs().max(1e-6), "{a} vs {b}");
    }
    let dir = TempDir::new("mq-imatrix");
    let p = dir.path("i.gguf");
    m.write(&p).unwrap();
    let back = Imatrix::read(&p).unwrap();
    assert_eq!(back.len(), m.len());
    let mut opts = Options::new(Format::Q4_0, Method::Imatrix);
    opts.imatrix = Some(back);
    assert!(!opts.needs_pass());
    let stored = quantize(&w, None, &opts);
    let mse = quantize(&w, None, &Options::new(Format::Q4_0, Method::Mse));
    let name = "blk.1.ffn_down.weight";
    assert_ne!(stored.tensors[name], mse.tensors[name]);
    assert!(
        stored.reports.iter().all(|r| r.how == "imatrix"),
        "{:?}",
        stored.reports
    );
}

/// A budget is met (and nearly spent), a larger budget buys a lower planned error, and an
/// impossible one is a clear error.
#[test]
fn mixed_precision_meets_the_budget() {
    let w = weights(&spec(11));
    let calib = tokens(4, 4, 64, 300);
    let cands = vec![Format::Q8_0, Format::Q5_0, Format::Q4_1, Format::Q4_0];
    let plan_at = |b: f64| {
        mixed::plan(
            &w,
            &calib,
            &PlanOptions {
                target_bpw: b,
                candidates: cands.clone(),
            },
            &mut |_, _| {},
        )
    };
    let cost = |p: &mixed::Plan| -> f64 { p.entries.iter().map(|e| e.options[e.chosen].2).sum() };
    let lo = plan_at(5.2).unwrap();
    let hi = plan_at(6.5).unwrap();
    for (p, b) in [(&lo, 5.2), (&hi, 6.5)] {
        assert!(
            p.bits_per_weight <= b && p.bits_per_weight > b - 0.6,
            "{} vs {b}",
            p.bits_per_weight
        );
        let mut opts = Options::new(Format::Q4_0, Method::Imatrix);
        opts.formats = p.formats.clone();
        let q = quantize(&w, Some(&calib), &opts);
        let got = q.bits_per_weight();
        assert!(
            (got - p.bits_per_weight).abs() < 1e-9,
            "{got} vs {}",
            p.bits_per_weight
        );
    }
    assert!(cost(&hi) < cost(&lo), "{} vs {}", cost(&hi), cost(&lo));
    let used: std::collections::HashSet<Format> = lo.formats.values().copied().collect();
    assert!(used.len() >= 2, "{used:?}");
    assert!(lo.table().contains("planned"));
    let e = plan_at(3.0).unwrap_err();
    assert!(
        matches!(e, Error::InvalidArgument(_)) && e.to_string().contains("smallest plan"),
        "{e}"
    );
}

/// The CPU scorer gives the GPU model's log-probabilities.
#[test]
fn cpu_scorer_matches_the_gpu_model() {
    let spec = TinyLlama {
        format: Format::Q4_0,
        ..spec(13)
    };
    let w = weights(&spec);
    let toks: Vec<u32> = tokens(8, 1, 40, 300).sequences()[0].clone();
    let mut cpu = CpuScorer::new(&w);
    let got = cpu.log_probs(&toks).unwrap();
    let mut gpu = GpuModel::new(
        common::ctx(),
        &w,
        GpuModelOptions {
            max_context: 64,
            ..Default::default()
        },
    )
    .unwrap();
    let want = gpu.log_probs(&toks).unwrap();
    assert_eq!(got.len(), want.len());
    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
        assert!((a - b).abs() < 1e-3, "position {i}: cpu {a} gpu {b}");
    }
}

/// The commands: `imatrix`, `quantize --calib-text` with each method, `--imatrix`,
/// `--target-bpw`, `perplexity --cpu`; and their errors.
#[test]
fn commands_quantize_a_model_on_text() {
    let dir = TempDir::new("mq-cli");
    let model = dir.path("tiny.gguf");
    spec(15).write(&model).unwrap();
    let text = dir.path("calib.txt");
    let words = "the quick brown fox jumps over the lazy dog while a cat sleeps in the sun ";
    std::fs::write(&text, words.repeat(40)).unwrap();
    let (m, t) = (s(&model), s(&text));
    let im = dir.path("im.gguf");
    let (_, err) = ok(&[
        "imatrix",
        "--model",
        m,
        "--text",
        t,
        "-o",
        s(&im),
        "--ctx",
        "64",
    ]);
    assert!(err.contains("importance of 15 matrices"), "{err}");
    let q = dir.path("q.gguf");
    for extra in [
        &["-m", "gptq", "--calib-text", t, "--act-order"][..],
        &["-m", "awq", "--calib-text", t],
        &["-m", "imatrix", "--imatrix", s(&im)],
        &[
            "-m",
            "imatrix",
            "--calib-text",
            t,
            "--target-bpw",
            "5.5",
            "--candidates",
            "q8_0,q4_0",
        ],
    ] {
        let mut args = vec!["quantize", m, s(&q), "-f", "q4_0", "--calib-ctx", "64"];
        args.extend_from_slice(extra);
        let (_, err) = ok(&args);
        assert!(
            err.contains("bits per weight over all tensors"),
            "{extra:?}: {err}"
        );
        let back = Weights::open(&q).unwrap();
        assert_eq!(back.layers.len(), 2);
        let model = gguf::read_model(&q).unwrap();
        let method = model
            .metadata("wgquant.quantize.method")
            .and_then(|v| v.as_str())
            .unwrap()
            .to_string();
        assert!(method.starts_with(extra[1]), "{method}");
        let (out, _) = ok(&[
            "perplexity",
            "--model",
            s(&q),
            "--text",
            t,
            "--ctx",
            "64",
            "--cpu",
        ]);
        assert!(out.contains("Final estimate: PPL"), "{out}");
        if extra.contains(&"--target-bpw") {
            assert!(err.contains("plan for 5.500 bits per weight"), "{err}");
        }
    }
    // CPU and GPU perplexity agree.
    let cpu = ok(&[
        "perplexity",
        "--model",
        m,
        "--text",
        t,
        "--ctx",
        "64",
        "--cpu",
    ])
    .0;
    let gpu = ok(&["perplexity", "--model", m, "--text", t, "--ctx", "64"]).0;
    let ppl = |o: &str| -> f64 {
        o.lines()
            .find_map(|l| l.strip_prefix("Final estimate: PPL = "))
            .and_then(|r| r.split_whitespace().next())
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!((ppl(&cpu) / ppl(&gpu) - 1.0).abs() < 1e-4, "{cpu} vs {gpu}");
    // Errors: missing text for gptq, flags of another method, an impossible budget, a file
    // that is not a model, an imatrix that is not one.
    let base = ["quantize", m, s(&q), "-f", "q4_0"];
    fn with<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        [base, extra].concat()
    }
    let e = fails(&with(&base, &["-m", "gptq", "--target-bpw", "5"]));
    assert!(e.contains("calibration"), "{e}");
    let e = fails(&with(
        &base,
        &["-m", "rtn", "--act-order", "--calib-text", t],
    ));
    assert!(e.contains("GPTQ options"), "{e}");
    let e = fails(&with(
        &base,
        &[
            "--calib-text",
            t,
            "--target-bpw",
            "1.0",
            "--candidates",
            "q8_0,q4_0",
        ],
    ));
    assert!(e.contains("smallest plan"), "{e}");
    let e = fails(&["quantize", s(&im), s(&q), "-f", "q4_0", "--calib-text", t]);
    assert!(e.contains("tensor") || e.contains("metadata"), "{e}");
    let e = fails(&with(&base, &["-m", "imatrix", "--imatrix", m]));
    assert!(e.contains("not an importance matrix"), "{e}");
}

/// SmolLM2 (when fetched): the calibration pass over the real model on a short text reports
/// every layer's output error, all small (RTN, so that the test stays short: GPTQ on the
/// whole model takes minutes, see docs/MODEL.md; the methods are tested on small models
/// above).
#[test]
fn smollm2_calibration_pass_on_a_short_text() {
    let Some(path) = common::smollm2::path() else {
        return;
    };
    let w = Weights::open(&path).unwrap();
    let tok = wgquant::llama::tokenizer::Tokenizer::from_metadata(&w.metadata).unwrap();
    let text = "Permission is hereby granted, free of charge, to any person obtaining a copy \
                of this software and associated documentation files. "
        .repeat(16);
    let calib = CalibTokens::from_text(&tok, &text, 128, 256).unwrap();
    assert_eq!(calib.tokens(), 256);
    let mut steps = 0;
    let q = mq::quantize_model(
        &w,
        Some(&calib),
        &Options::new(Format::Q4_0, Method::Rtn),
        &mut |p| {
            if let Progress::Step { .. } = p {
                steps += 1
            }
        },
    )
    .unwrap();
    assert_eq!(steps, w.config.n_layers + 1);
    assert_eq!(q.reports.len(), 7 * w.config.n_layers + 1);
    for r in &q.reports {
        let e = r.output_nmse.unwrap();
        assert!(e.is_finite() && e < 0.1, "{}: {e}", r.name);
        assert_eq!(r.format, Format::Q4_0);
    }
}

/// Pruning a whole model on the inputs the pass captures: SparseGPT (pruning and GPTQ in
/// one pass) leaves each layer's output closer to the float layer's than magnitude pruning
/// does, on the captured activations and on held-out tokens; every block matrix is 2:4 in
/// the 2:4 format, the embedding stays dense, and the file reads back.
#[test]
fn sparsegpt_beats_magnitude_pruning_on_captured_activations() {
    use wgquant::quantize::prune::{Pattern, PruneMethod};
    use wgquant::quantize::Prune;
    let w = weights(&spec(8));
    let calib = tokens(9, 8, 64, 300);
    let held = tokens(10, 4, 64, 300);
    let want = logits(&w, &held);
    let s24 = Format::Sparse24(wgquant::format::SparseFormat::new(4, 64));
    let run = |pattern: Pattern, how: PruneMethod, method: Method, f: Format| {
        let mut opts = Options::new(f, method);
        opts.prune = Some(Prune {
            pattern,
            method: how,
        });
        let q = quantize(&w, Some(&calib), &opts);
        let blocks: Vec<&mq::TensorReport> = q
            .reports
            .iter()
            .filter(|r| r.name.starts_with("blk."))
            .collect();
        let layer =
            blocks.iter().map(|r| r.output_nmse.unwrap()).sum::<f64>() / blocks.len() as f64;
        let qw = as_weights(&w, &q);
        (q, layer, nmse(&want, &logits(&qw, &held)))
    };
    for (pattern, f) in [
        (Pattern::TWO_FOUR, s24),
        (Pattern::Unstructured(0.5), Format::Q4_0),
    ] {
        let (_, mag_layer, mag) = run(pattern, PruneMethod::Magnitude, Method::Rtn, f);
        let (_, wanda_layer, _) = run(pattern, PruneMethod::Wanda, Method::Rtn, f);
        let (q, sg_layer, sg) = run(pattern, PruneMethod::SparseGpt, Method::GPTQ, f);
        println!(
            "{pattern} {f}: layer output NMSE magnitude {mag_layer:.3e}, wanda {wanda_layer:.3e}, \
             sparsegpt {sg_layer:.3e}; logits NMSE magnitude {mag:.3e}, sparsegpt {sg:.3e}"
        );
        assert!(
            sg_layer < 0.8 * mag_layer,
            "{pattern}: {sg_layer} vs {mag_layer}"
        );
        assert!(
            sg_layer < wanda_layer,
            "{pattern}: {sg_layer} vs wanda {wanda_layer}"
        );
        assert!(sg < mag, "{pattern}: held-out {sg} vs {mag}");
        for r in &q.reports {
            let StoredTensor::Quantized(t) = &q.tensors[&r.name] else {
                panic!("{} is not quantized", r.name)
            };
            if !r.name.starts_with("blk.") {
                // The tied embedding: dense.
                assert!(!matches!(t.format(), Format::Sparse24(_)), "{}", r.name);
                continue;
            }
            assert_eq!(t.format(), f, "{}", r.name);
            let v = t.dequantize();
            match pattern {
                Pattern::NofM { keep, of } => {
                    for g in v.chunks_exact(of) {
                        assert!(
                            g.iter().filter(|x| **x != 0.0).count() <= keep,
                            "{}",
                            r.name
                        );
                    }
                }
                _ => {
                    let zeros = v.iter().filter(|x| **x == 0.0).count();
                    assert!(zeros * 2 >= v.len(), "{}: {zeros} of {}", r.name, v.len());
                }
            }
        }
    }
    // A 2:4 format takes only 2:4; SparseGPT needs the pass.
    let mut opts = Options::new(s24, Method::Rtn);
    opts.prune = Some(Prune {
        pattern: "4:8".parse().unwrap(),
        method: PruneMethod::Magnitude,
    });
    let e = mq::quantize_model(&w, Some(&calib), &opts, &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("2:4"), "{e}");
    opts.prune = Some(Prune {
        pattern: Pattern::TWO_FOUR,
        method: PruneMethod::SparseGpt,
    });
    assert!(opts.needs_pass());
    let e = mq::quantize_model(&w, None, &opts, &mut |_| {}).unwrap_err();
    assert!(matches!(e, Error::MissingCalibration { .. }), "{e}");
}

/// `quantize --prune` and a 2:4 format on a llama GGUF take the whole-model path even
/// without calibration text: the embedding stays dense, the block matrices are pruned.
#[test]
fn pruning_a_model_file_keeps_its_embedding_dense() {
    let dir = TempDir::new("mq-prune");
    let model = dir.path("tiny.gguf");
    spec(16).write(&model).unwrap();
    let text = dir.path("calib.txt");
    std::fs::write(&text, "pack my box with five dozen liquor jugs ".repeat(40)).unwrap();
    let q = dir.path("q.gguf");
    for extra in [
        &["-f", "int4_g64_2of4"][..],
        &["-f", "q4_0", "--prune", "50%"],
        &[
            "-f",
            "int4_g64_2of4",
            "-m",
            "gptq",
            "--calib-text",
            s(&text),
            "--calib-ctx",
            "64",
        ],
    ] {
        let mut args = vec!["quantize", s(&model), s(&q)];
        args.extend_from_slice(extra);
        let (_, err) = ok(&args);
        let f: Format = extra[1].parse().unwrap();
        let m = gguf::read_model(&q).unwrap();
        for (name, t) in m.tensors() {
            let StoredTensor::Quantized(t) = t else {
                continue;
            };
            let v = t.dequantize();
            let zeros = v.iter().filter(|x| **x == 0.0).count();
            if name == "token_embd.weight" {
                assert!(!matches!(t.format(), Format::Sparse24(_)), "{extra:?}");
                assert!(zeros * 4 < v.len(), "{extra:?}: the embedding was pruned");
            } else {
                assert_eq!(t.format(), f, "{extra:?} {name}");
                assert!(
                    zeros * 2 >= v.len(),
                    "{extra:?} {name}: {zeros} of {}",
                    v.len()
                );
            }
        }
        assert!(err.contains("wrote"), "{err}");
    }
}
