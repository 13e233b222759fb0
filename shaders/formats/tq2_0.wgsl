// GGUF TQ2_0 and TQ1_0 (one GPU layout): w = d * (q - 1), q a 2-bit code in natural order
// (16 per word), d an f16 per block of 256 weights (a chunk is 64, so one block each).
struct ChunkParams {
    d: f32,
}

fn chunk_params(row: u32, chunk: u32) -> ChunkParams {
    return ChunkParams(f16_bits_to_f32(param_half(row, chunk_block(chunk), 0u)));
}

fn dequant4(c: vec4<u32>, j: u32, p: ChunkParams) -> vec4<f32> {
    // Weights 4j .. 4j+3 are byte j % 4 of word j / 4.
    let b = c[j / 4u] >> (8u * (j & 3u));
    let q = vec4<u32>(b, b >> 2u, b >> 4u, b >> 6u) & vec4<u32>(3u);
    return p.d * (vec4<f32>(q) - 1.0);
}
