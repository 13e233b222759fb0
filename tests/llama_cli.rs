//! `wgquant generate` and `wgquant perplexity` as a user runs them: on a small random llama
//! GGUF the tests write (perplexity checked against the f64 CPU reference), and on
//! SmolLM2-135M-Instruct when present (see scripts/fetch-smollm2.sh).

mod common;

use common::cli::{failure, ok};
use common::temp::TempDir;

use std::path::{Path, PathBuf};
use wgquant::llama::synthetic::TinyLlama;
use wgquant::llama::tokenizer::Tokenizer;
use wgquant::llama::{cpu, CpuModel, Weights};

/// Exit code 2 with `want` in the message (a typed error, not a panic).
fn fails(args: &[&str], want: &str) {
    let (code, err) = failure(args);
    assert_eq!(code, Some(2), "wgquant {args:?}: {err}");
    assert!(
        err.contains(want),
        "wgquant {args:?}: expected '{want}' in:\n{err}"
    );
}

fn tiny_model(dir: &Path) -> PathBuf {
    let path = dir.join("tiny.gguf");
    TinyLlama::default().write(&path).unwrap();
    path
}

const TEXT: &str = "the rain in spain stays mainly in the plain; \
    then the heat on the street is hotter than the rest. \
    nine thin hens eat ten oats at the shore, and then there is more to the story.";

#[test]
fn generate_streams_deterministic_text_and_reports_speed() {
    let dir = TempDir::new("llama-generate");
    let m = tiny_model(&dir);
    let m = m.to_str().unwrap();
    let args = ["generate", "--model", m, "--prompt", "the heat", "-n", "12"];
    let (out, err) = ok(&args);
    assert!(out.starts_with("the heat"), "{out}");
    assert!(out.len() > "the heat".len(), "nothing generated: {out}");
    assert!(
        err.contains("tokens/s") && err.contains("generation: "),
        "{err}"
    );
    assert_eq!(ok(&args).0, out, "temperature 0 repeats");
    let (_, err) = ok(&[
        "generate",
        "--model",
        m,
        "--prompt",
        "the",
        "-n",
        "40",
        "--ignore-eos",
    ]);
    assert!(err.contains("generation: 40 tokens"), "{err}");
    let (sampled, _) = ok(&[
        "generate",
        "--model",
        m,
        "--prompt",
        "the",
        "-n",
        "6",
        "--temperature",
        "0.8",
        "--seed",
        "3",
    ]);
    assert!(sampled.starts_with("the"));
    ok(&[
        "generate", "--model", m, "--prompt", "hi", "--chat", "-n", "3",
    ]);
    fails(
        &[
            "generate",
            "--model",
            m,
            "--prompt",
            "x",
            "--temperature",
            "-1",
        ],
        "temperature",
    );
    fails(
        &["generate", "--model", m, "--prompt", "x", "-n", "1000"],
        "context",
    );
    fails(
        &["generate", "--model", "missing.gguf", "--prompt", "x"],
        "missing.gguf",
    );
}

/// llama-perplexity's method recomputed here from the CPU reference: chunks of `ctx`
/// tokens from an empty context, second-half predictions only.
fn reference_ppl(model: &Path, text: &str, ctx: usize) -> f64 {
    let w = Weights::open(model).unwrap();
    let tok = Tokenizer::from_metadata(&w.metadata).unwrap();
    assert!(!tok.add_bos());
    let ids = tok.encode(text, false);
    let mut cpu = CpuModel::new(&w);
    let (mut nll, mut count) = (0.0, 0);
    for chunk in ids.chunks_exact(ctx) {
        cpu.reset();
        let logits = cpu.forward(chunk).unwrap();
        for j in ctx / 2..ctx - 1 {
            nll -= cpu::log_prob(&logits[j], chunk[j + 1] as usize);
            count += 1;
        }
    }
    (nll / count as f64).exp()
}

#[test]
fn perplexity_matches_the_reference_computation() {
    let dir = TempDir::new("llama-ppl");
    let m = tiny_model(&dir);
    let text = dir.join("text.txt");
    std::fs::write(&text, TEXT).unwrap();
    let (ms, ts) = (m.to_str().unwrap(), text.to_str().unwrap());
    let (out, _) = ok(&["perplexity", "--model", ms, "--text", ts, "--ctx", "16"]);
    let last = out.lines().last().unwrap();
    let rest = last
        .strip_prefix("Final estimate: PPL = ")
        .unwrap_or_else(|| panic!("{out}"));
    let (ppl, err) = rest.split_once(" +/- ").unwrap();
    let (ppl, err): (f64, f64) = (ppl.parse().unwrap(), err.parse().unwrap());
    let want = reference_ppl(&m, TEXT, 16);
    assert!((ppl - want).abs() <= 1e-3 * want, "GPU {ppl} vs CPU {want}");
    assert!(err > 0.0 && err < ppl, "{last}");
    assert!(out.starts_with("[1]"), "running values first: {out}");
    // --chunks limits the work: one chunk only.
    let (one, _) = ok(&[
        "perplexity",
        "--model",
        ms,
        "--text",
        ts,
        "--ctx",
        "16",
        "--chunks",
        "1",
    ]);
    assert!(!one.contains("[2]"), "{one}");
    fails(
        &["perplexity", "--model", ms, "--text", ts, "--ctx", "200"],
        "needs at least",
    );
    fails(
        &["perplexity", "--model", ms, "--text", "missing.txt"],
        "missing.txt",
    );
}

#[test]
fn smollm2_continues_a_fact_and_matches_the_reference() {
    let Some(model) = common::smollm2::path() else {
        return;
    };
    let m = model.to_str().unwrap();
    let (out, err) = ok(&[
        "generate",
        "--model",
        m,
        "--prompt",
        "The capital of France is",
        "-n",
        "3",
    ]);
    assert!(
        out.starts_with("The capital of France is Paris"),
        "{out}\n{err}"
    );
    assert!(err.contains("q4_1 x210, q8_0 x1"), "{err}");
}
