//! The llama forward pass on the GPU against the f64 CPU reference, on small random models
//! written to GGUF and read back (every position, prompt batches through GEMM and single
//! tokens through GEMV, split batches, log-probabilities, generation, bad input).

mod common;

use wgquant::io::gguf;
use wgquant::llama::synthetic::TinyLlama;
use wgquant::llama::{
    cpu, generate, CpuModel, GpuModel, GpuModelOptions, Output, Sampler, Weights,
};
use wgquant::{Error, Format};

fn weights(spec: &TinyLlama) -> Weights {
    let (meta, tensors) = spec.build().unwrap();
    let bytes = gguf::model_bytes(&meta, &tensors).unwrap();
    Weights::from_gguf(gguf::read_model_bytes(&bytes).unwrap()).unwrap()
}

fn nmse(want: &[f64], got: &[f32]) -> f64 {
    assert_eq!(want.len(), got.len());
    assert!(got.iter().all(|v| v.is_finite()), "non-finite logits");
    let num: f64 = want
        .iter()
        .zip(got)
        .map(|(a, &b)| (a - b as f64).powi(2))
        .sum();
    let den: f64 = want.iter().map(|a| a * a).sum();
    num / den
}

fn tokens(n: usize, vocab: usize, seed: u64) -> Vec<u32> {
    let mut rng = wgquant::rng::Rng::new(seed);
    (0..n)
        .map(|_| (rng.next_u64() % vocab as u64) as u32)
        .collect()
}

/// Prompt (batch) then decode steps (one token each): GPU logits at every position within
/// NMSE 1e-5 of the CPU reference.
fn check_against_cpu(spec: &TinyLlama, max_batch: usize, prompt: usize, decode: usize) {
    let w = weights(spec);
    let v = spec.vocab;
    let opts = GpuModelOptions {
        max_context: 64,
        max_batch,
    };
    let mut gpu = GpuModel::new(common::ctx(), &w, opts).unwrap();
    let mut cpu = CpuModel::new(&w);
    let toks = tokens(prompt + decode, v, spec.seed + 7);
    let got = gpu.forward(&toks[..prompt], Output::AllLogits).unwrap();
    let want = cpu.forward(&toks[..prompt]).unwrap();
    for (i, wr) in want.iter().enumerate() {
        let e = nmse(wr, &got[i * v..(i + 1) * v]);
        assert!(
            e <= 1e-5,
            "{spec:?} batch {max_batch}: position {i} NMSE {e:.2e}"
        );
    }
    for (i, &t) in toks[prompt..].iter().enumerate() {
        let got = gpu.forward(&[t], Output::LastLogits).unwrap();
        let want = cpu.forward(&[t]).unwrap();
        let e = nmse(&want[0], &got);
        assert!(e <= 1e-5, "{spec:?}: decode step {i} NMSE {e:.2e}");
    }
    assert_eq!(gpu.position(), prompt + decode);
}

#[test]
fn gpu_logits_match_the_cpu_reference() {
    // Prompt of 13 tokens: the GEMM path; then 4 GEMV steps.
    check_against_cpu(&TinyLlama::default(), 512, 13, 4);
}

#[test]
fn formats_grouping_and_untied_output() {
    let specs = [
        TinyLlama {
            format: Format::Q4_0,
            n_kv_heads: 1,
            tied: false,
            seed: 2,
            ..Default::default()
        },
        TinyLlama {
            format: Format::F32,
            embedding_format: Format::F32,
            n_heads: 2,
            n_kv_heads: 2,
            seed: 3,
            ..Default::default()
        },
        TinyLlama {
            format: "int4_g32".parse().unwrap(),
            embedding_format: Format::Q4_1,
            n_layers: 1,
            vocab: 333,
            seed: 4,
            ..Default::default()
        },
    ];
    for s in &specs {
        check_against_cpu(s, 512, 9, 2);
    }
}

#[test]
fn prompts_split_into_batches_match() {
    // 11 tokens in batches of 4 (4 + 4 + 3): three plans, the cache carried across submits.
    check_against_cpu(&TinyLlama::default(), 4, 11, 3);
}

#[test]
fn log_probs_match_the_cpu_reference_across_batches() {
    let spec = TinyLlama::default();
    let w = weights(&spec);
    let toks = tokens(23, spec.vocab, 9);
    let want: Vec<f64> = {
        let logits = CpuModel::new(&w).forward(&toks).unwrap();
        (0..toks.len() - 1)
            .map(|i| cpu::log_prob(&logits[i], toks[i + 1] as usize))
            .collect()
    };
    for max_batch in [512, 5] {
        let opts = GpuModelOptions {
            max_context: 32,
            max_batch,
        };
        let mut gpu = GpuModel::new(common::ctx(), &w, opts).unwrap();
        let got = gpu.log_probs(&toks).unwrap();
        assert_eq!(got.len(), toks.len() - 1);
        for (i, (&g, &e)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g as f64 - e).abs() <= 1e-4 * e.abs().max(1.0),
                "batch {max_batch} position {i}: {g} vs {e}"
            );
        }
    }
}

#[test]
fn greedy_generation_is_deterministic_and_follows_the_reference() {
    let spec = TinyLlama::default();
    let w = weights(&spec);
    let prompt = tokens(6, spec.vocab, 11);
    let mut gpu = GpuModel::new(common::ctx(), &w, GpuModelOptions::default()).unwrap();
    let run = |gpu: &mut GpuModel| {
        let mut out = Vec::new();
        let stats = generate(
            gpu,
            &prompt,
            12,
            &mut Sampler::greedy(),
            |_| false,
            |t| {
                out.push(t);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(stats.generated_tokens, 12);
        assert_eq!(stats.prompt_tokens, 6);
        out
    };
    let first = run(&mut gpu);
    assert_eq!(first, run(&mut gpu), "temperature 0 must repeat exactly");
    // The CPU reference's greedy choices (the argmax is stable unless two logits tie
    // within the GPU's rounding; the margin is checked so a tie cannot pass silently).
    let mut cpu = CpuModel::new(&w);
    let mut logits = cpu.forward(&prompt).unwrap().pop().unwrap();
    for (i, &t) in first.iter().enumerate() {
        let mut sorted = logits.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let best = logits.iter().position(|&x| x == sorted[0]).unwrap() as u32;
        if sorted[0] - sorted[1] > 1e-3 {
            assert_eq!(t, best, "step {i}");
        }
        logits = cpu.forward(&[t]).unwrap().pop().unwrap();
    }
    // Stops at an end token, which is still reported.
    let mut seen = Vec::new();
    let end = first[3];
    let stats = generate(
        &mut gpu,
        &prompt,
        12,
        &mut Sampler::greedy(),
        |t| t == end,
        |t| {
            seen.push(t);
            Ok(())
        },
    )
    .unwrap();
    let stop = first.iter().position(|&t| t == end).unwrap();
    assert_eq!(seen, first[..=stop]);
    assert_eq!(stats.generated_tokens, stop + 1);
}

#[test]
fn sampling_respects_temperature_top_k_and_seed() {
    let logits = [0.0f32, 5.0, 4.9, -3.0, 1.0];
    let draw = |s: &mut Sampler| {
        (0..200)
            .map(|_| s.sample(&logits).unwrap())
            .collect::<Vec<_>>()
    };
    let a = draw(&mut Sampler::new(1.0, 2, 1.0, 5));
    assert!(a.iter().all(|&t| t == 1 || t == 2), "top-k 2");
    assert!(a.contains(&1) && a.contains(&2));
    assert_eq!(
        a,
        draw(&mut Sampler::new(1.0, 2, 1.0, 5)),
        "same seed, same tokens"
    );
    let b = draw(&mut Sampler::new(1.0, 0, 0.5, 5));
    assert!(
        b.iter().all(|&t| t == 1),
        "top-p 0.5 keeps only the best token"
    );
    assert!(Sampler::greedy().sample(&[1.0, f32::NAN]).is_err());
    assert!(Sampler::new(-1.0, 0, 1.0, 0).validate().is_err());
    assert!(Sampler::new(1.0, 0, 0.0, 0).validate().is_err());
}

#[test]
fn bad_input_is_a_typed_error() {
    let spec = TinyLlama::default();
    let w = weights(&spec);
    let opts = GpuModelOptions {
        max_context: 8,
        max_batch: 512,
    };
    let mut gpu = GpuModel::new(common::ctx(), &w, opts).unwrap();
    assert!(matches!(
        gpu.forward(&[spec.vocab as u32], Output::LastLogits),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        gpu.forward(&[], Output::LastLogits),
        Err(Error::InvalidArgument(_))
    ));
    gpu.forward(&[1; 8], Output::LastLogits).unwrap();
    let full = gpu.forward(&[1], Output::LastLogits);
    assert!(
        matches!(&full, Err(Error::InvalidArgument(m)) if m.contains("context")),
        "{full:?}"
    );
    gpu.reset();
    gpu.forward(&[1], Output::LastLogits).unwrap();

    // Files that are not a llama model the forward pass can run.
    let (meta, tensors) = spec.build().unwrap();
    let read = |meta: &[(String, gguf::MetaValue)], t: &[(String, gguf::StoredTensor)]| {
        Weights::from_gguf(gguf::read_model_bytes(&gguf::model_bytes(meta, t).unwrap()).unwrap())
    };
    let without =
        |name: &str| -> Vec<_> { tensors.iter().filter(|(n, _)| n != name).cloned().collect() };
    let e = read(&meta, &without("blk.1.ffn_up.weight")).unwrap_err();
    assert!(e.to_string().contains("blk.1.ffn_up.weight"), "{e}");
    let mut extra = tensors.clone();
    extra.push((
        "blk.0.attn_q.bias".into(),
        gguf::StoredTensor::Float {
            shape: vec![64],
            data: vec![0.0; 64],
        },
    ));
    let e = read(&meta, &extra).unwrap_err();
    assert!(e.to_string().contains("attn_q.bias"), "{e}");
    let mut wrong_heads = meta.clone();
    for (k, v) in &mut wrong_heads {
        if k == "llama.attention.head_count_kv" {
            *v = gguf::MetaValue::U32(3);
        }
    }
    assert!(matches!(read(&wrong_heads, &tensors), Err(Error::Model(_))));
    let mut other_arch = meta.clone();
    other_arch[0].1 = gguf::MetaValue::String("mamba".into());
    let e = read(&other_arch, &tensors).unwrap_err();
    assert!(e.to_string().contains("mamba"), "{e}");
    let mut bigger = TinyLlama {
        d_ff: 128,
        ..spec.clone()
    }
    .build()
    .unwrap()
    .1;
    bigger.retain(|(n, _)| n.contains("ffn_gate"));
    let mut mixed = without("blk.0.ffn_gate.weight");
    mixed.push(bigger.remove(0));
    let e = read(&meta, &mixed).unwrap_err();
    assert!(e.to_string().contains("shape"), "{e}");
}

#[test]
fn smollm2_gpu_logits_match_the_cpu_reference() {
    let Some(path) = common::smollm2::path() else {
        return;
    };
    let w = Weights::open(path).unwrap();
    assert_eq!(w.config.n_layers, 30);
    let mut gpu = GpuModel::new(common::ctx(), &w, GpuModelOptions::default()).unwrap();
    let mut cpu = CpuModel::new(&w);
    // "The capital of France is" then one decode step.
    let prompt = [504, 3575, 282, 4649, 314];
    let v = w.config.vocab_size;
    let got = gpu.forward(&prompt, Output::AllLogits).unwrap();
    let want = cpu.forward(&prompt).unwrap();
    for (i, wr) in want.iter().enumerate() {
        let e = nmse(wr, &got[i * v..(i + 1) * v]);
        assert!(e <= 1e-5, "position {i} NMSE {e:.2e}");
    }
    let paris = 7042;
    let got = gpu.forward(&[paris], Output::LastLogits).unwrap();
    let e = nmse(&cpu.forward(&[paris]).unwrap()[0], &got);
    assert!(e <= 1e-5, "decode NMSE {e:.2e}");
}
