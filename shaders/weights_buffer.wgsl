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

// Words 4i .. 4i + 3 of the params plane.
fn load_param_word4(i: u32) -> vec4<u32> {
    return vec4<u32>(params[4u * i], params[4u * i + 1u], params[4u * i + 2u], params[4u * i + 3u]);
}
