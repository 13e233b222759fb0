// MXFP4 (GGUF): w = kvalues_mxfp4[q] * 2^(e - 128), one E8M0 byte e per 32 weights (one
// chunk; params: e in the low byte of the block's half).
//
// kvalues_mxfp4 (E2M1 doubled) {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12} as
// a const table of int8 bytes, 4 per u32 (byte i of word w = kv[4w + i]): a vector indexed
// at run time is one dynamic extract, where a const array would be copied per access.
const KVALUES_MXFP4 = vec4<u32>(0x03020100u, 0x0c080604u, 0xfdfeff00u, 0xf4f8fafcu);

struct ChunkParams {
    d: f32,
}

// Half the E8M0 scale, from bits as ggml's ggml_e8m0_to_fp32_half (e < 2: f32 subnormals).
fn e8m0_to_f32_half(e: u32) -> f32 {
    return bitcast<f32>(select((e - 1u) << 23u, 0x00200000u << e, e < 2u));
}

fn chunk_params(row: u32, chunk: u32) -> ChunkParams {
    return ChunkParams(e8m0_to_f32_half(param_half(row, chunk_block(chunk), 0u) & 0xffu));
}

// The signed table bytes for four 4-bit codes.
fn lookup4(q: vec4<u32>) -> vec4<f32> {
    let t = KVALUES_MXFP4;
    let w = vec4<i32>(bitcast<i32>(t[q.x >> 2u]), bitcast<i32>(t[q.y >> 2u]),
                      bitcast<i32>(t[q.z >> 2u]), bitcast<i32>(t[q.w >> 2u]));
    let up = vec4<u32>(24u) - 8u * (q & vec4<u32>(3u));
    return vec4<f32>((w << up) >> vec4<u32>(24u));
}

fn dequant4(c: vec4<u32>, j: u32, p: ChunkParams) -> vec4<f32> {
    let word = c[j / 2u] >> (16u * (j & 1u));
    let q = vec4<u32>(word, word >> 4u, word >> 8u, word >> 12u) & vec4<u32>(15u);
    return lookup4(q) * p.d;
}
