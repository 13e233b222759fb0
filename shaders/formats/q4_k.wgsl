// GGUF Q4_K: super-blocks of 256 = 8 sub-blocks of 32 (one chunk each), w = d*sc*q - dmin*m.
// Params per super-block (4 words): d | dmin << 16, then ggml's 12 bytes of 6-bit (sc, m)
// pairs (kquant_scales.wgsl, composed before this file). Codes are in natural order.
// d*sc*q and dmin*m are exact in f32, as on the CPU.
struct ChunkParams {
    // d * sc of the chunk's sub-block.
    d: f32,
    // dmin * m of the chunk's sub-block.
    m: f32,
}

fn chunk_params(row: u32, chunk: u32) -> ChunkParams {
    let dm = kquant_sub_block(param_word4(row, (chunk / 8u) * 4u), chunk % 8u);
    return ChunkParams(dm.x, dm.y);
}

fn dequant4(c: vec4<u32>, j: u32, p: ChunkParams) -> vec4<f32> {
    return p.d * nibbles4(c, j) - p.m;
}
