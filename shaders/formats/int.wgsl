// wgquant group-wise int4/int8: unsigned codes q with zero point z, w = s * (q - z).
// Params per group: f16 scale s, then z as an integer. Symmetric formats store
// z = 2^(BITS-1) (8 or 128) explicitly, so both cases read the same way.
// s * (q - z) is exact in f32 (11-bit s, |q - z| < 256), matching the CPU bit for bit.
override BITS: u32 = 4u;

struct ChunkParams {
    s: f32,
    z: f32,
}

fn chunk_params(row: u32, chunk: u32) -> ChunkParams {
    let sz = param_pair(row, chunk_block(chunk));
    return ChunkParams(f16_bits_to_f32(sz.x), f32(sz.y));
}

fn dequant4(c: vec4<u32>, j: u32, p: ChunkParams) -> vec4<f32> {
    if BITS == 4u {
        return p.s * (nibbles4(c, j) - p.z);
    }
    return p.s * (ubytes4(c, j) - p.z);
}
