//! Byte-level BPE tokenizer read from GGUF metadata (`tokenizer.ggml.*`).
