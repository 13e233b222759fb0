// GGUF Q5_0: w = d * (q - 16), q = low nibble (codes plane) | 5th bit << 4 (params).
// Params per block (one chunk): 3 halves: d, qh low 16 bits, qh high 16 bits; bit i of qh
// is the 5th bit of weight i. A block's halves start at half 3b, so they straddle words.
struct ChunkParams {
    d: f32,
    qh: u32,
}

// Chunk texel (src/format/q5.rs): the f32 bits of d, then qh.
fn chunk_params_from_texel(t: vec4<u32>) -> ChunkParams {
    return ChunkParams(bitcast<f32>(t.x), t.y);
}

fn chunk_params(row: u32, chunk: u32) -> ChunkParams {
    if CHUNK_PARAM_TEXELS {
        return chunk_params_from_texel(param_word4(row, 4u * chunk));
    }
    let b = chunk_block(chunk);
    let first = 3u * b / 2u;
    let w0 = param_word(row, first);
    let w1 = param_word(row, first + 1u);
    if (b & 1u) == 0u {
        // d | qh.lo in w0, qh.hi in the low half of w1.
        return ChunkParams(f16_bits_to_f32(w0 & 0xffffu), (w0 >> 16u) | (w1 << 16u));
    }
    // d in the high half of w0, qh in w1.
    return ChunkParams(f16_bits_to_f32(w0 >> 16u), w1);
}

// The 5th bits of weights 4j..4j+3, as 0 or 16.
fn high_bits4(qh: u32, j: u32) -> vec4<f32> {
    let h = qh >> (4u * j);
    return vec4<f32>((vec4<u32>(h, h >> 1u, h >> 2u, h >> 3u) & vec4<u32>(1u)) << vec4<u32>(4u));
}

fn dequant4(c: vec4<u32>, j: u32, p: ChunkParams) -> vec4<f32> {
    return p.d * (nibbles4(c, j) + high_bits4(p.qh, j) - 16.0);
}
