// GGUF Q4_0: w = d * (q - 8), d an f16 per 32 weights (one chunk).
struct ChunkParams {
    d: f32,
}

fn chunk_params(row: u32, chunk: u32) -> ChunkParams {
    return ChunkParams(f16_bits_to_f32(param_half(row, chunk_block(chunk), 0u)));
}

fn dequant4(c: vec4<u32>, j: u32, p: ChunkParams) -> vec4<f32> {
    return p.d * (nibbles4(c, j) - 8.0);
}
