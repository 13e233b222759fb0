//! Every input the fuzz targets (`fuzz/`) ever failed on, kept under
//! `tests/data/fuzz/<target>/`, run through the same checks as the target: the reader must
//! return Ok or a typed error, never panic, and what it reads must survive wgquant's own
//! writer (the checks live in `fuzz/checks.rs`, shared with the targets). A panic anywhere
//! fails the test.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::{Path, PathBuf};
use wgquant::io::gguf;

/// The crash inputs of `target` (a folder may not exist yet: no crash so far) and the fuzz
/// seeds (`fuzz/corpus/<target>/seed-*`, valid files), so every target replays something.
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<PathBuf> = Vec::new();
    for (dir, seeds_only) in [
        (root.join("tests/data/fuzz").join(target), false),
        (root.join("fuzz/corpus").join(target), true),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        files.extend(entries.map(|e| e.unwrap().path()).filter(|p| {
            p.is_file()
                && (!seeds_only
                    || p.file_name()
                        .unwrap()
                        .to_string_lossy()
                        .starts_with("seed-"))
        }));
    }
    files.sort();
    assert!(!files.is_empty(), "no inputs for {target}");
    files
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect()
}

fn run(target: &str, check: fn(&[u8])) {
    let files = inputs(target);
    for (path, data) in &files {
        eprintln!("{}", path.display());
        check(data);
        // The same bytes through a file: read_model maps it.
        if target == "gguf" {
            let tmp = std::env::temp_dir().join(format!(
                "wgquant-fuzz-regression-{}-{}",
                std::process::id(),
                path.file_name().unwrap().to_string_lossy()
            ));
            std::fs::write(&tmp, data).unwrap();
            let from_file = gguf::read_model(&tmp).map_err(|e| e.to_string());
            let from_bytes = gguf::read_model_bytes(data).map_err(|e| e.to_string());
            let _ = std::fs::remove_file(&tmp);
            assert_eq!(from_file.is_ok(), from_bytes.is_ok(), "{}", path.display());
        }
    }
}

#[test]
fn gguf_fuzz_regressions() {
    run("gguf", checks::gguf);
}

#[test]
fn safetensors_fuzz_regressions() {
    run("safetensors", checks::safetensors);
}

#[test]
fn npy_fuzz_regressions() {
    run("npy", checks::npy);
}
