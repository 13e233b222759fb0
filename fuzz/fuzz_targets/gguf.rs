//! The GGUF reader on arbitrary bytes: header, every tensor's bytes, the whole model, the
//! dequantization of every quantized tensor, the tokenizer and llama weight loaders, and (for
//! inputs that read) a write / read /
//! write round trip through wgquant's writer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Cursor;
use wgquant::io::gguf::{self, GgufReader, StoredTensor};
use wgquant::llama::{tokenizer::Tokenizer, Weights};

fuzz_target!(|data: &[u8]| {
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
});
