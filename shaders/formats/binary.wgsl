// (Being implemented.)
struct ChunkParams {
    unused: u32,
}

fn chunk_params(row: u32, chunk: u32) -> ChunkParams {
    return ChunkParams(0u);
}

fn dequant4(c: vec4<u32>, j: u32, p: ChunkParams) -> vec4<f32> {
    return vec4<f32>(0.0);
}
