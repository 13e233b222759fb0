// GGUF Q4_0: w = d * (q - 8), d an f16 per 32 weights.
fn block_params(row: u32, block: u32) -> vec2<f32> {
    let d = f16_bits_to_f32(param_half(row, block, 0u));
    return vec2<f32>(d, -8.0 * d);
}

fn decode(c: vec4<u32>, j: u32) -> vec4<f32> {
    return nibbles4(c, j);
}
