// GGUF IQ4_NL: w = d * kvalues_iq4nl[q], d an f16 per 32 weights (one chunk).
//
// The grid {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113} as a
// const table of int8 bytes, 4 per u32 (byte i of word w = kv[4w + i]). A const
// array<f32, 16> indexed at run time gets copied to a function-local array on every access
// (6x slower GEMV on lavapipe); a vector indexed at run time is one dynamic extract.
const KVALUES_IQ4NL = vec4<u32>(0xbfad9881u, 0xf6eaddcfu, 0x26190d01u, 0x71594535u);

struct ChunkParams {
    d: f32,
}

fn chunk_params(row: u32, chunk: u32) -> ChunkParams {
    return ChunkParams(f16_bits_to_f32(param_half(row, chunk_block(chunk), 0u)));
}

// The signed table bytes for four 4-bit indices.
fn lookup4(q: vec4<u32>) -> vec4<f32> {
    let t = KVALUES_IQ4NL;
    let w = vec4<i32>(bitcast<i32>(t[q.x >> 2u]), bitcast<i32>(t[q.y >> 2u]),
                      bitcast<i32>(t[q.z >> 2u]), bitcast<i32>(t[q.w >> 2u]));
    let up = vec4<u32>(24u) - 8u * (q & vec4<u32>(3u));
    return vec4<f32>((w << up) >> vec4<u32>(24u));
}

fn dequant4(c: vec4<u32>, j: u32, p: ChunkParams) -> vec4<f32> {
    let word = c[j / 2u] >> (16u * (j & 1u));
    let q = vec4<u32>(word, word >> 4u, word >> 8u, word >> 12u) & vec4<u32>(15u);
    return p.d * lookup4(q);
}
