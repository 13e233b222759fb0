// GGUF IQ4_NL: w = d * kvalues_iq4nl[q], d an f16 per 32 weights (one chunk).
//
// The grid {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113} as a
// table of int8 bytes for int8_table4 (int8_table.wgsl, composed before this file).
const KVALUES_IQ4NL = vec4<u32>(0xbfad9881u, 0xf6eaddcfu, 0x26190d01u, 0x71594535u);

struct ChunkParams {
    d: f32,
}

fn chunk_params(row: u32, chunk: u32) -> ChunkParams {
    return ChunkParams(f16_bits_to_f32(param_half(row, chunk_block(chunk), 0u)));
}

fn dequant4(c: vec4<u32>, j: u32, p: ChunkParams) -> vec4<f32> {
    let word = c[j / 2u] >> (16u * (j & 1u));
    let q = vec4<u32>(word, word >> 4u, word >> 8u, word >> 12u) & vec4<u32>(15u);
    return p.d * int8_table4(KVALUES_IQ4NL, q);
}
