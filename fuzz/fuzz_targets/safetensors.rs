//! The safetensors reader on arbitrary bytes; files that read are written back and reread.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wgquant::io::safetensors as st;

fuzz_target!(|data: &[u8]| {
    let Ok(f) = st::read_safetensors_bytes(data) else {
        return;
    };
    if let Ok(w) = st::safetensors_bytes(&f.tensors) {
        let back = st::read_safetensors_bytes(&w).expect("wgquant's own output reads back");
        assert_eq!(back.tensors.len(), f.tensors.len());
    }
});
