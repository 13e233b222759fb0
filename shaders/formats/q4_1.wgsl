// GGUF Q4_1: w = d * q + m, f16 d and m per 32 weights (params: d, m).
fn block_params(row: u32, block: u32) -> vec2<f32> {
    let d = f16_bits_to_f32(param_half(row, block, 0u));
    let m = f16_bits_to_f32(param_half(row, block, 1u));
    return vec2<f32>(d, m);
}

fn decode(c: vec4<u32>, j: u32) -> vec4<f32> {
    return nibbles4(c, j);
}
