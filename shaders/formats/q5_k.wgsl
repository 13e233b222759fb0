// GGUF Q5_K: super-blocks of 256 = 8 sub-blocks of 32 (one chunk each), w = d*sc*q - dmin*m,
// q = low nibble (codes plane, natural order) + 16 * 5th bit.
// Params per super-block (12 words): d | dmin << 16, ggml's 12 bytes of 6-bit (sc, m) pairs
// (kquant_scales.wgsl, composed before this file), then one word of 5th bits per sub-block
// (bit l = weight l of the sub-block).
// d*sc*q and dmin*m are exact in f32, as on the CPU.
struct ChunkParams {
    // d * sc of the chunk's sub-block.
    d: f32,
    // dmin * m of the chunk's sub-block.
    m: f32,
    // 5th bits of the chunk's 32 weights.
    h: u32,
}

// Chunk texel (src/format/q5_k.rs): the f32 bits of d and m, then h.
fn chunk_params_from_texel(t: vec4<u32>) -> ChunkParams {
    return ChunkParams(bitcast<f32>(t.x), bitcast<f32>(t.y), t.z);
}

fn chunk_params(row: u32, chunk: u32) -> ChunkParams {
    if CHUNK_PARAM_TEXELS {
        return chunk_params_from_texel(param_word4(row, 4u * chunk));
    }
    let base = (chunk / 8u) * 12u;
    let sub = chunk % 8u;
    let dm = kquant_sub_block(param_word4(row, base), sub);
    return ChunkParams(dm.x, dm.y, param_word(row, base + 4u + sub));
}

fn dequant4(c: vec4<u32>, j: u32, p: ChunkParams) -> vec4<f32> {
    let hb = (vec4<u32>(p.h) >> (vec4<u32>(4u * j) + vec4<u32>(0u, 1u, 2u, 3u))) & vec4<u32>(1u);
    return p.d * (nibbles4(c, j) + 16.0 * vec4<f32>(hb)) - p.m;
}
