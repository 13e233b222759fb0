//! The safetensors reader on arbitrary bytes (see `checks::safetensors`).
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::safetensors(data));
