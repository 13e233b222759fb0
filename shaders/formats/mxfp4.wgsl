// MXFP4 (GGUF): w = kvalues_mxfp4[q] * 2^(e - 128), one E8M0 byte e per 32 weights (one
// chunk; params: e in the low byte of the block's half).
//
// kvalues_mxfp4 (E2M1 doubled) {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12} as
// a table of int8 bytes for int8_table4 (int8_table.wgsl, composed before this file).
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

fn dequant4(c: vec4<u32>, j: u32, p: ChunkParams) -> vec4<f32> {
    let word = c[j / 2u] >> (16u * (j & 1u));
    let q = vec4<u32>(word, word >> 4u, word >> 8u, word >> 12u) & vec4<u32>(15u);
    return int8_table4(KVALUES_MXFP4, q) * p.d;
}
