// Shared by Q4_K and Q5_K: a super-block's first 4 param words, fetched as one vec4
// (param_word4: one texel where the params are a texture), are d | dmin << 16 and then
// ggml's 12 bytes of 6-bit (scale, min) pairs of the 8 sub-blocks (byte i in word 1 + i / 4,
// bits 8 * (i % 4)).

// ggml's get_scale_min_k4: (scale, min) of sub-block j (0..8) from the words `s`.
fn kquant_scale_min(s: vec4<u32>, j: u32) -> vec2<u32> {
    let shift = 8u * (j & 3u);
    // Bytes j % 4, 4 + j % 4 and 8 + j % 4 of the packed scales.
    let lo = (s.y >> shift) & 0xffu;
    let mid = (s.z >> shift) & 0xffu;
    if j < 4u {
        return vec2<u32>(lo & 63u, mid & 63u);
    }
    let hi = (s.w >> shift) & 0xffu;
    return vec2<u32>((hi & 15u) | ((lo >> 6u) << 4u), (hi >> 4u) | ((mid >> 6u) << 4u));
}

// d * scale and dmin * min of sub-block j: exact in f32 (11-bit and 6-bit factors).
fn kquant_sub_block(s: vec4<u32>, j: u32) -> vec2<f32> {
    let sm = kquant_scale_min(s, j);
    return vec2<f32>(f16_bits_to_f32(s.x & 0xffffu) * f32(sm.x), f16_bits_to_f32(s.x >> 16u) * f32(sm.y));
}
