// Weights and activations in 2-D textures, outputs in an f32 storage buffer (CPU adapters).
// On lavapipe every storage-buffer load is a loop over the SIMD lanes with a bounds check per
// lane, while a texel fetch is one gather: a GEMV that reads its operands from textures runs
// several times faster there.
//
// Each texture holds its plane as one linear array of texels folded into rows of
// TEXTURE_WIDTH texels: element i sits at (i % TEXTURE_WIDTH, i / TEXTURE_WIDTH).
//
// The codes are stored in groups of CHUNK_ROW_GROUP weight rows, chunk-major within a group:
// chunk c of row r is element ((r / G) * chunks_per_row + c) * G + r % G. The texture GEMV
// walks the chunks of many rows in step (8 lanes x 8 rows on lavapipe); row-major, those are
// 64 streams a whole row apart (16 KiB for f32 at k = 4096), which map to the same few cache
// sets and evict each other before a line's next 16 bytes are read. Chunk-major, each step
// reads one contiguous run. The params stay row-major: a row's params are 8-32x smaller.

const TEXTURE_WIDTH: u32 = 4096u;
const CHUNK_ROW_GROUP: u32 = 32u;
const CHUNK_STEP: u32 = CHUNK_ROW_GROUP;

fn chunk_row_base(row: u32) -> u32 {
    return (row / CHUNK_ROW_GROUP) * chunks_per_row() * CHUNK_ROW_GROUP + row % CHUNK_ROW_GROUP;
}

// Rgba32Uint: one 16-byte chunk per texel.
@group(0) @binding(0) var codes_tex: texture_2d<u32>;
// Rgba32Uint: four param words per texel (a k-quant super-block's scales in one fetch).
@group(0) @binding(1) var params_tex: texture_2d<u32>;
// Rgba32Float: four values of x per texel.
@group(0) @binding(2) var x_tex: texture_2d<f32>;

fn texel(i: u32) -> vec2<u32> {
    return vec2<u32>(i % TEXTURE_WIDTH, i / TEXTURE_WIDTH);
}

fn load_chunk(i: u32) -> vec4<u32> {
    return textureLoad(codes_tex, texel(i), 0);
}

fn load_param_word(i: u32) -> u32 {
    return textureLoad(params_tex, texel(i / 4u), 0)[i % 4u];
}

fn load_param_word4(i: u32) -> vec4<u32> {
    return textureLoad(params_tex, texel(i), 0);
}

fn load_x4(i: u32) -> vec4<f32> {
    return textureLoad(x_tex, texel(i), 0);
}

@group(0) @binding(3) var<storage, read_write> y: array<f32>;

fn store_y(i: u32, v: f32) {
    y[i] = v;
}
