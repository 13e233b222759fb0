// GGUF Q4_1: w = d * q + m, f16 d and m per 32 weights (params: d, m).
fn block_params(row: u32, block: u32) -> vec2<f32> {
    let dm = param_pair(row, block);
    return vec2<f32>(f16_bits_to_f32(dm.x), f16_bits_to_f32(dm.y));
}

fn decode(c: vec4<u32>, j: u32) -> vec4<f32> {
    return nibbles4(c, j);
}
