// f32 weights: codes are the raw bits, no params.
struct ChunkParams {
    unused: u32,
}

fn chunk_params(row: u32, chunk: u32) -> ChunkParams {
    return ChunkParams(0u);
}

fn dequant4(c: vec4<u32>, j: u32, p: ChunkParams) -> vec4<f32> {
    return bitcast<vec4<f32>>(c);
}
