// GGUF Q8_0: w = d * q, q a signed byte, d an f16 per 32 weights.
fn block_params(row: u32, block: u32) -> vec2<f32> {
    return vec2<f32>(f16_bits_to_f32(param_half(row, block, 0u)), 0.0);
}

fn decode(c: vec4<u32>, j: u32) -> vec4<f32> {
    return sbytes4(c, j);
}
