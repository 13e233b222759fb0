//! File formats: GGUF, safetensors, .npy.
