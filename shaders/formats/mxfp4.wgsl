// MXFP4 (GGUF): w = KVALUES_MXFP4[q] * 2^(e - 128), one E8M0 byte e per 32 weights (one
// chunk; params: e in the low byte of the block's half). The table is E2M1 doubled.
const KVALUES_MXFP4 = array<f32, 16>(
    0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0,
    0.0, -1.0, -2.0, -3.0, -4.0, -6.0, -8.0, -12.0,
);

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
    let kv = vec4<f32>(KVALUES_MXFP4[q.x], KVALUES_MXFP4[q.y], KVALUES_MXFP4[q.z], KVALUES_MXFP4[q.w]);
    return kv * p.d;
}
