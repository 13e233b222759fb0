// wgquant 1-bit: w = +s (bit 1) or -s (bit 0), sign bits in natural order (32 per word),
// s an f16 per group of BLOCK_VALUES = 32, 64 or 128 weights. A chunk is 128 weights, so
// 1 to 4 groups; a word never straddles two, so ChunkParams holds the scale of each word.
struct ChunkParams {
    s: vec4<f32>,
}

fn chunk_params(row: u32, chunk: u32) -> ChunkParams {
    let first = chunk * chunk_values();
    var s: vec4<f32>;
    for (var w = 0u; w < 4u; w++) {
        s[w] = f16_bits_to_f32(param_half(row, (first + 32u * w) / BLOCK_VALUES, 0u));
    }
    return ChunkParams(s);
}

fn dequant4(c: vec4<u32>, j: u32, p: ChunkParams) -> vec4<f32> {
    // Weights 4j .. 4j+3 are bits 4 (j % 8) .. of word j / 8.
    let w = j / 8u;
    let b = c[w] >> (4u * (j & 7u));
    let s = p.s[w];
    return select(vec4<f32>(-s), vec4<f32>(s), (vec4<u32>(b, b >> 1u, b >> 2u, b >> 3u) & vec4<u32>(1u)) == vec4<u32>(1u));
}
