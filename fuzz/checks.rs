//! What each fuzz target checks on one input, shared by the targets (`fuzz_targets/`) and
//! by `tests/fuzz_regressions.rs`, which replays every input that ever failed. A reader must
//! return Ok or a typed error and never panic; what it reads must survive wgquant's writer.
// Each fuzz target includes this file and calls one of the three.
#![allow(dead_code)]

use std::io::Cursor;
use wgquant::io::gguf::{self, GgufReader, StoredTensor};
use wgquant::io::{npy, safetensors as st};
use wgquant::llama::{tokenizer::Tokenizer, Weights};

/// The GGUF reader: header, every tensor's bytes, the tokenizer and llama weight loaders,
/// the whole model, the dequantization of every quantized tensor, and (for inputs that read)
/// a write / read / write round trip through wgquant's writer.
pub fn gguf(data: &[u8]) {
    let mem = GgufReader::from_bytes(data);
    // The Read + Seek source runs the same parser and must agree (Debug: NaN-safe).
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
        let b = r
            .tensor_bytes(i)
            .expect("the header checked every tensor's range");
        assert_eq!(b.len() as u64, n);
        assert_eq!(
            r.tensor_data(i).expect("copy of the same range").len() as u64,
            n
        );
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
    // What the writer produces from a model, the reader must read, and writing that again
    // must give the same bytes.
    if let Ok(w) = gguf::model_bytes(m.metadata_entries(), m.tensors()) {
        let back = gguf::read_model_bytes(&w).expect("wgquant's own output reads back");
        let w2 = gguf::model_bytes(back.metadata_entries(), back.tensors()).expect("rewrite");
        assert!(w == w2, "write(read(write(m))) differs from write(m)");
    }
}

/// The safetensors reader; files that read are written back and reread.
pub fn safetensors(data: &[u8]) {
    let Ok(f) = st::read_safetensors_bytes(data) else {
        return;
    };
    if let Ok(w) = st::safetensors_bytes(&f.tensors) {
        let back = st::read_safetensors_bytes(&w).expect("wgquant's own output reads back");
        assert_eq!(back.tensors.len(), f.tensors.len());
    }
}

/// The .npy reader; arrays that read are written back and reread.
pub fn npy(data: &[u8]) {
    let Ok(a) = npy::read_npy_bytes(data) else {
        return;
    };
    let w = npy::npy_bytes(&a.shape, &a.data).expect("a read array can be written");
    let back = npy::read_npy_bytes(&w).expect("wgquant's own output reads back");
    assert_eq!(back.shape, a.shape);
    assert_eq!(back.data.len(), a.data.len());
}
