// GGUF IQ4_NL: w = d * KVALUES_IQ4NL[q], d an f16 per 32 weights (one chunk).
const KVALUES_IQ4NL = array<f32, 16>(
    -127.0, -104.0, -83.0, -65.0, -49.0, -35.0, -22.0, -10.0,
    1.0, 13.0, 25.0, 38.0, 53.0, 69.0, 89.0, 113.0,
);

struct ChunkParams {
    d: f32,
}

fn chunk_params(row: u32, chunk: u32) -> ChunkParams {
    return ChunkParams(f16_bits_to_f32(param_half(row, chunk_block(chunk), 0u)));
}

fn dequant4(c: vec4<u32>, j: u32, p: ChunkParams) -> vec4<f32> {
    let word = c[j / 2u] >> (16u * (j & 1u));
    let q = vec4<u32>(word, word >> 4u, word >> 8u, word >> 12u) & vec4<u32>(15u);
    let kv = vec4<f32>(KVALUES_IQ4NL[q.x], KVALUES_IQ4NL[q.y], KVALUES_IQ4NL[q.z], KVALUES_IQ4NL[q.w]);
    return p.d * kv;
}
