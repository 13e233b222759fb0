//! The GGUF reader on arbitrary bytes (see `checks::gguf`).
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::gguf(data));
