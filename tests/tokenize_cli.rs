//! `wgquant tokenize` as a user runs it: ids for SmolLM2-135M-Instruct (when the model file is
//! present, see scripts/fetch-smollm2.sh) and a clean error exit for bad input.

mod common;

use common::cli::{ok, wgquant};

#[test]
fn tokenize_smollm2_ids() {
    let Some(model) = common::smollm2::path() else {
        return;
    };
    let m = model.to_str().expect("UTF-8 path");
    // add_bos_token is false for SmolLM2: no BOS in front.
    let (out, _) = ok(&["tokenize", "--model", m, "Hello world! 123"]);
    assert_eq!(out, "[19556, 905, 17, 216, 33, 34, 35]\n");
    // Control tokens are parsed by default, plain text with --no-parse-special.
    let (out, _) = ok(&["tokenize", "--model", m, "<|im_start|>user\n"]);
    assert_eq!(out, "[1, 4093, 198]\n");
    let (out, _) = ok(&["tokenize", "--model", m, "--no-parse-special", "<|im_end|>"]);
    assert_eq!(out, "[44, 108, 306, 79, 486, 108, 46]\n");
    let (out, _) = ok(&[
        "tokenize",
        "--model",
        m,
        "--show-tokens",
        "<|im_start|>Hi\n",
    ]);
    assert_eq!(
        out,
        "     1 -> '<|im_start|>'\n 26843 -> 'Hi'\n   198 -> '\\n'\n"
    );
}

#[test]
fn tokenize_errors_exit_cleanly() {
    let missing = std::env::temp_dir().join("wgquant-no-such-model.gguf");
    let o = wgquant(&["tokenize", "--model", missing.to_str().unwrap(), "hi"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "stderr: {err}");
    assert!(err.starts_with("error: I/O error on"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    // A file that is not GGUF.
    let bad = std::env::temp_dir().join(format!("wgquant-not-gguf-{}.gguf", std::process::id()));
    std::fs::write(&bad, b"not a gguf file at all").unwrap();
    let o = wgquant(&["tokenize", "--model", bad.to_str().unwrap(), "hi"]);
    std::fs::remove_file(&bad).ok();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "stderr: {err}");
    assert!(err.contains("malformed GGUF"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
