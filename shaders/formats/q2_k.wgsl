// GGUF Q2_K: w = (d * (sc & 15)) * q - dmin * (sc >> 4), q a 2-bit code, sc the byte of the
// weight's sub-block of 16. Codes plane: 2-bit codes, natural order (a chunk is 64 weights,
// 4 sub-blocks). Params, 5 words per block (src/format/q2_k.rs): word c < 4 the scale bytes
// of the block's chunk c, word 4 d | dmin << 16.

struct ChunkParams {
    // d * (sc & 15) per sub-block of the chunk (at most 15 significant bits).
    dl: vec4<f32>,
    // dmin * (sc >> 4) per sub-block of the chunk.
    ml: vec4<f32>,
}

// The params of a chunk whose four scale bytes are `sw` in a block whose d | dmin << 16 is `dw`.
fn q2_k_params(sw: u32, dw: u32) -> ChunkParams {
    let sc = vec4<u32>(sw, sw >> 8u, sw >> 16u, sw >> 24u) & vec4<u32>(255u);
    let dd = unpack2x16float(dw);
    return ChunkParams(dd.x * vec4<f32>(sc & vec4<u32>(15u)), dd.y * vec4<f32>(sc >> vec4<u32>(4u)));
}

// Chunk texel (src/format/q2_k.rs): the chunk's scale bytes, then its block's d | dmin << 16.
fn chunk_params_from_texel(t: vec4<u32>) -> ChunkParams {
    return q2_k_params(t.x, t.y);
}

fn chunk_params(row: u32, chunk: u32) -> ChunkParams {
    if CHUNK_PARAM_TEXELS {
        return chunk_params_from_texel(param_word4(row, 4u * chunk));
    }
    let base = chunk_block(chunk) * 5u;
    return q2_k_params(param_word(row, base + chunk % 4u), param_word(row, base + 4u));
}

fn dequant4(c: vec4<u32>, j: u32, p: ChunkParams) -> vec4<f32> {
    // Weights 4j..4j+3 lie in sub-block j / 4, which is also the word holding their codes.
    let w = c[j / 4u] >> (8u * (j % 4u));
    let q = vec4<f32>(vec4<u32>(w, w >> 2u, w >> 4u, w >> 6u) & vec4<u32>(3u));
    return p.dl[j / 4u] * q - p.ml[j / 4u];
}
