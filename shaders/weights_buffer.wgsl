// Weights in storage buffers (every device).

@group(0) @binding(0) var<storage, read> codes: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> params: array<u32>;

// Chunk `i` of the codes plane (16 bytes).
fn load_chunk(i: u32) -> vec4<u32> {
    return codes[i];
}

// Word `w` of row `row`'s params.
fn load_row_param_word(row: u32, w: u32) -> u32 {
    return params[row * param_row_words() + w];
}

// Words w .. w + 3 of row `row`'s params.
fn load_row_param_word4(row: u32, w: u32) -> vec4<u32> {
    let i = row * param_row_words() + w;
    return vec4<u32>(params[i], params[i + 1u], params[i + 2u], params[i + 3u]);
}
