//! The .npy reader on arbitrary bytes (see `checks::npy`).
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::npy(data));
