// GGUF Q5_1: w = d * q + m, q = low nibble (codes plane) | 5th bit << 4 (params).
// Params per block (one chunk): 4 halves = 2 words: (d, m), then qh (bit i = 5th bit of
// weight i).
struct ChunkParams {
    d: f32,
    m: f32,
    qh: u32,
}

fn chunk_params(row: u32, chunk: u32) -> ChunkParams {
    let b = chunk_block(chunk);
    let dm = param_pair(row, 2u * b);
    return ChunkParams(f16_bits_to_f32(dm.x), f16_bits_to_f32(dm.y), param_word(row, 2u * b + 1u));
}

// The 5th bits of weights 4j..4j+3, as 0 or 16.
fn high_bits4(qh: u32, j: u32) -> vec4<f32> {
    let h = qh >> (4u * j);
    return vec4<f32>((vec4<u32>(h, h >> 1u, h >> 2u, h >> 3u) & vec4<u32>(1u)) << vec4<u32>(4u));
}

fn dequant4(c: vec4<u32>, j: u32, p: ChunkParams) -> vec4<f32> {
    return p.d * (nibbles4(c, j) + high_bits4(p.qh, j)) + p.m;
}
