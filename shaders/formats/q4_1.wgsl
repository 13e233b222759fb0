// GGUF Q4_1: w = d * q + m, f16 d and m per 32 weights (one chunk; params: d, m).
struct ChunkParams {
    d: f32,
    m: f32,
}

fn chunk_params(row: u32, chunk: u32) -> ChunkParams {
    let dm = param_pair(row, chunk_block(chunk));
    return ChunkParams(f16_bits_to_f32(dm.x), f16_bits_to_f32(dm.y));
}

fn dequant4(c: vec4<u32>, j: u32, p: ChunkParams) -> vec4<f32> {
    return p.d * nibbles4(c, j) + p.m;
}
