// GGUF Q5_K: super-blocks of 256 = 8 sub-blocks of 32 (one chunk each), w = d*sc*q - dmin*m,
// q = low nibble (codes plane, natural order) + 16 * 5th bit.
// Params per super-block (12 words): d | dmin << 16, ggml's 12 bytes of 6-bit (sc, m) pairs,
// then one word of 5th bits per sub-block (bit l = weight l of the sub-block).
// d*sc*q and dmin*m are exact in f32, as on the CPU.
struct ChunkParams {
    // d * sc of the chunk's sub-block.
    d: f32,
    // dmin * m of the chunk's sub-block.
    m: f32,
    // 5th bits of the chunk's 32 weights.
    h: u32,
}

// Byte i (0..12) of the packed scales of the super-block whose params start at word `base`.
fn k5_scale_byte(row: u32, base: u32, i: u32) -> u32 {
    return (param_word(row, base + 1u + i / 4u) >> (8u * (i & 3u))) & 0xffu;
}

// ggml's get_scale_min_k4: (sc, m) of sub-block j (0..8).
fn k5_scale_min(row: u32, base: u32, j: u32) -> vec2<u32> {
    if j < 4u {
        return vec2<u32>(k5_scale_byte(row, base, j) & 63u, k5_scale_byte(row, base, j + 4u) & 63u);
    }
    let hi = k5_scale_byte(row, base, j + 4u);
    let sc = (hi & 15u) | ((k5_scale_byte(row, base, j - 4u) >> 6u) << 4u);
    let m = (hi >> 4u) | ((k5_scale_byte(row, base, j) >> 6u) << 4u);
    return vec2<u32>(sc, m);
}

fn chunk_params(row: u32, chunk: u32) -> ChunkParams {
    let base = (chunk / 8u) * 12u;
    let sub = chunk % 8u;
    let dm = param_word(row, base);
    let sm = k5_scale_min(row, base, sub);
    return ChunkParams(
        f16_bits_to_f32(dm & 0xffffu) * f32(sm.x),
        f16_bits_to_f32(dm >> 16u) * f32(sm.y),
        param_word(row, base + 4u + sub),
    );
}

fn dequant4(c: vec4<u32>, j: u32, p: ChunkParams) -> vec4<f32> {
    let hb = (vec4<u32>(p.h) >> (vec4<u32>(4u * j) + vec4<u32>(0u, 1u, 2u, 3u))) & vec4<u32>(1u);
    return p.d * (nibbles4(c, j) + 16.0 * vec4<f32>(hb)) - p.m;
}
