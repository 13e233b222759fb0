// Weights and activations in 2-D textures, outputs in an f32 storage buffer (CPU adapters).
// On lavapipe every storage-buffer load is a loop over the SIMD lanes with a bounds check per
// lane, while a texel fetch is one gather: a GEMV that reads its operands from textures runs
// several times faster there.
//
// Each texture holds its plane as one linear array of texels folded into rows of
// TEXTURE_WIDTH texels: element i sits at (i % TEXTURE_WIDTH, i / TEXTURE_WIDTH).

const TEXTURE_WIDTH: u32 = 4096u;

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
