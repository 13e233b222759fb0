// Weights in storage buffers (every device).

@group(0) @binding(0) var<storage, read> codes: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> params: array<u32>;

// Chunk `i` of the codes plane (16 bytes).
fn load_chunk(i: u32) -> vec4<u32> {
    return codes[i];
}

// Word `i` of the params plane.
fn load_param_word(i: u32) -> u32 {
    return params[i];
}
