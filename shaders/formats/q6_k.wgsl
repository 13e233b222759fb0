// GGUF Q6_K: w = (d * scales[i / 16]) * (q - 32), q a 6-bit code, 256 weights per block.
// Codes plane: the low 4 bits, natural order. Params, 21 words per block (src/format/q6_k.rs):
// words 0..16 the high 2 bits (16 weights per word), 16..20 the int8 scales, 20 the f16 d.
// A chunk of 32 weights spans two scale groups of 16.

struct ChunkParams {
    // High 2 bits of the chunk's 32 weights: weights 0..15 in .x, 16..31 in .y.
    hi: vec2<u32>,
    // d * scale of the chunk's two groups of 16 (exact in f32).
    ds: vec2<f32>,
}

// Chunk texel (src/format/q6_k.rs): the two words of high bits, then the f32 bits of ds.
fn chunk_params_from_texel(t: vec4<u32>) -> ChunkParams {
    return ChunkParams(t.xy, bitcast<vec2<f32>>(t.zw));
}

fn chunk_params(row: u32, chunk: u32) -> ChunkParams {
    if CHUNK_PARAM_TEXELS {
        return chunk_params_from_texel(param_word4(row, 4u * chunk));
    }
    let base = chunk_block(chunk) * 21u;
    let c = chunk % 8u;
    let hi = vec2<u32>(param_word(row, base + 2u * c), param_word(row, base + 2u * c + 1u));
    let sw = param_word(row, base + 16u + c / 2u) >> (16u * (c & 1u));
    let sc = vec2<f32>(f32(extractBits(i32(sw), 0u, 8u)), f32(extractBits(i32(sw), 8u, 8u)));
    let d = f16_bits_to_f32(param_word(row, base + 20u) & 0xffffu);
    return ChunkParams(hi, d * sc);
}

fn dequant4(c: vec4<u32>, j: u32, p: ChunkParams) -> vec4<f32> {
    let lw = c[j / 2u] >> (16u * (j & 1u));
    let lo = vec4<u32>(lw, lw >> 4u, lw >> 8u, lw >> 12u) & vec4<u32>(15u);
    let hw = p.hi[j / 4u] >> (8u * (j % 4u));
    let hi = vec4<u32>(hw, hw >> 2u, hw >> 4u, hw >> 6u) & vec4<u32>(3u);
    let q = vec4<f32>(lo | (hi << vec4<u32>(4u))) - 32.0;
    return p.ds[j / 4u] * q;
}
