//! Every input the fuzz targets (`fuzz/`) ever failed on, kept under
//! `tests/data/fuzz/<target>/`, run through the same checks as the target: the reader must
//! return Ok or a typed error, never panic, and what it reads must survive wgquant's own
//! writer. A panic anywhere fails the test.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use wgquant::io::gguf::{self, GgufReader, StoredTensor};
use wgquant::io::{npy, safetensors as st};
use wgquant::llama::{tokenizer::Tokenizer, Weights};

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

/// `fuzz/fuzz_targets/gguf.rs`, on one input.
fn check_gguf(data: &[u8]) {
    let mem = GgufReader::from_bytes(data);
    let stream = GgufReader::new(Cursor::new(data), data.len() as u64);
    match (&mem, &stream) {
        (Ok(a), Ok(b)) => assert_eq!(format!("{:?}", a.header()), format!("{:?}", b.header())),
        (Err(_), Err(_)) => {}
        (a, b) => panic!(
            "in-memory and stream readers disagree: {:?} vs {:?}",
            a.as_ref().err(),
            b.as_ref().err()
        ),
    }
    let Ok(mut r) = mem else { return };
    for i in 0..r.header().tensors.len() {
        let n = r.header().tensors[i].n_bytes;
        assert_eq!(r.tensor_bytes(i).unwrap().len() as u64, n);
        assert_eq!(r.tensor_data(i).unwrap().len() as u64, n);
    }
    // The language-model loaders read the same untrusted metadata and tensors.
    if let Ok(t) = Tokenizer::from_metadata(&r.header().metadata) {
        let ids = t.encode("Hi <|im_start|>user 12 ok\n", true);
        let _ = t.decode(&ids);
        let _ = t.chat_prompt("x");
    }
    let Ok(m) = r.into_model() else { return };
    let _ = Weights::from_gguf(m.clone());
    // Every block of every quantized tensor decodes (what `quantize` does to a GGUF input).
    for (_, t) in m.tensors() {
        if let StoredTensor::Quantized(q) = t {
            assert_eq!(q.dequantize().len(), q.rows() * q.k());
        }
    }
    if let Ok(w) = gguf::model_bytes(m.metadata_entries(), m.tensors()) {
        let back = gguf::read_model_bytes(&w).expect("wgquant's own output reads back");
        let w2 = gguf::model_bytes(back.metadata_entries(), back.tensors()).expect("rewrite");
        assert!(w == w2, "write(read(write(m))) differs from write(m)");
    }
}

/// `fuzz/fuzz_targets/safetensors.rs`, on one input.
fn check_safetensors(data: &[u8]) {
    let Ok(f) = st::read_safetensors_bytes(data) else {
        return;
    };
    if let Ok(w) = st::safetensors_bytes(&f.tensors) {
        let back = st::read_safetensors_bytes(&w).expect("wgquant's own output reads back");
        assert_eq!(back.tensors.len(), f.tensors.len());
    }
}

/// `fuzz/fuzz_targets/npy.rs`, on one input.
fn check_npy(data: &[u8]) {
    let Ok(a) = npy::read_npy_bytes(data) else {
        return;
    };
    let w = npy::npy_bytes(&a.shape, &a.data).expect("a read array can be written");
    let back = npy::read_npy_bytes(&w).expect("wgquant's own output reads back");
    assert_eq!(back.shape, a.shape);
    assert_eq!(back.data.len(), a.data.len());
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
    run("gguf", check_gguf);
}

#[test]
fn safetensors_fuzz_regressions() {
    run("safetensors", check_safetensors);
}

#[test]
fn npy_fuzz_regressions() {
    run("npy", check_npy);
}
