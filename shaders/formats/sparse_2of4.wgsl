// wgquant 2:4 sparse int4/int8 (src/format/sparse.rs): two of every four weights kept as
// codes q (w = s * (q - z), z = 2^(BITS-1)); positions 4 bits per group of four (p0 in bits
// 0-1, p1 in bits 2-3). Params per block: f16 s, a zero half, then the position words.
// Chunks hold 4 * WORD_VALUES dense weights: 16 groups (int4) or 8 (int8), whose positions
// are 2 words or 1.
override BITS: u32 = 4u;

struct ChunkParams {
    s: f32,
    pos: vec2<u32>,
}

// Chunk texel (src/format/sparse.rs): the f16 bits of s, then the chunk's position words.
fn chunk_params_from_texel(t: vec4<u32>) -> ChunkParams {
    return ChunkParams(f16_bits_to_f32(t.x & 0xffffu), t.yz);
}

fn chunk_params(row: u32, chunk: u32) -> ChunkParams {
    if CHUNK_PARAM_TEXELS {
        return chunk_params_from_texel(param_word4(row, 4u * chunk));
    }
    let b = chunk_block(chunk);
    let base = b * (PARAM_HALVES / 2u);
    let in_block = chunk - b * (BLOCK_VALUES / chunk_values());
    let words = chunk_values() / 32u;
    let first = base + 1u + in_block * words;
    let s = f16_bits_to_f32(param_word(row, base) & 0xffffu);
    if words == 2u {
        return ChunkParams(s, vec2<u32>(param_word(row, first), param_word(row, first + 1u)));
    }
    return ChunkParams(s, vec2<u32>(param_word(row, first), 0u));
}

fn dequant4(c: vec4<u32>, j: u32, p: ChunkParams) -> vec4<f32> {
    let n = p.pos[j / 8u] >> (4u * (j % 8u));
    var q: vec2<f32>;
    if BITS == 4u {
        let b = c[j / 4u] >> (8u * (j % 4u));
        q = vec2<f32>(vec2<u32>(b, b >> 4u) & vec2<u32>(15u)) - 8.0;
    } else {
        let h = c[j / 2u] >> (16u * (j % 2u));
        q = vec2<f32>(vec2<u32>(h, h >> 8u) & vec2<u32>(255u)) - 128.0;
    }
    let at = vec4<u32>(0u, 1u, 2u, 3u);
    let v = select(vec4<f32>(0.0), vec4<f32>(q.x), at == vec4<u32>(n & 3u))
        + select(vec4<f32>(0.0), vec4<f32>(q.y), at == vec4<u32>((n >> 2u) & 3u));
    return p.s * v;
}
