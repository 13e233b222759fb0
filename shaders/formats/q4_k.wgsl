// GGUF Q4_K: super-blocks of 256 = 8 sub-blocks of 32 (one chunk each), w = d*sc*q - dmin*m.
// Params per super-block (4 words): d | dmin << 16, then ggml's 12 bytes of 6-bit (sc, m)
// pairs. Codes are in natural order. d*sc*q and dmin*m are exact in f32, as on the CPU.
struct ChunkParams {
    // d * sc of the chunk's sub-block.
    d: f32,
    // dmin * m of the chunk's sub-block.
    m: f32,
}

// Byte i (0..12) of the packed scales of the super-block whose params start at word `base`.
fn k4_scale_byte(row: u32, base: u32, i: u32) -> u32 {
    return (param_word(row, base + 1u + i / 4u) >> (8u * (i & 3u))) & 0xffu;
}

// ggml's get_scale_min_k4: (sc, m) of sub-block j (0..8).
fn k4_scale_min(row: u32, base: u32, j: u32) -> vec2<u32> {
    if j < 4u {
        return vec2<u32>(k4_scale_byte(row, base, j) & 63u, k4_scale_byte(row, base, j + 4u) & 63u);
    }
    let hi = k4_scale_byte(row, base, j + 4u);
    let sc = (hi & 15u) | ((k4_scale_byte(row, base, j - 4u) >> 6u) << 4u);
    let m = (hi >> 4u) | ((k4_scale_byte(row, base, j) >> 6u) << 4u);
    return vec2<u32>(sc, m);
}

fn chunk_params(row: u32, chunk: u32) -> ChunkParams {
    let base = (chunk / 8u) * 4u;
    let dm = param_word(row, base);
    let sm = k4_scale_min(row, base, chunk % 8u);
    return ChunkParams(f16_bits_to_f32(dm & 0xffffu) * f32(sm.x), f16_bits_to_f32(dm >> 16u) * f32(sm.y));
}

fn dequant4(c: vec4<u32>, j: u32, p: ChunkParams) -> vec4<f32> {
    return p.d * nibbles4(c, j) - p.m;
}
