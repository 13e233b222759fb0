// f32 weights: codes are the raw bits, no params.
fn block_params(row: u32, block: u32) -> vec2<f32> {
    return vec2<f32>(1.0, 0.0);
}

fn decode(c: vec4<u32>, j: u32) -> vec4<f32> {
    return bitcast<vec4<f32>>(c);
}
