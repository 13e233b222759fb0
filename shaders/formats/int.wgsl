// wgquant group-wise int4/int8: unsigned codes q with zero point z, w = s * (q - z).
// Params per group: f16 scale s, then z as an integer. Symmetric formats store
// z = 2^(BITS-1) (8 or 128) explicitly, so both cases read the same way.
override BITS: u32 = 4u;

fn block_params(row: u32, block: u32) -> vec2<f32> {
    let sz = param_pair(row, block);
    let s = f16_bits_to_f32(sz.x);
    let z = f32(sz.y);
    return vec2<f32>(s, -s * z);
}

fn decode(c: vec4<u32>, j: u32) -> vec4<f32> {
    if BITS == 4u {
        return nibbles4(c, j);
    }
    return ubytes4(c, j);
}
