// Weights in 2-D textures (CPU adapters); x comes from x_texture.wgsl or x_uniform.wgsl,
// as f32 whatever the caller's activation type (x_copy.wgsl widens f16), and y goes to
// y_f32.wgsl or y_f16.wgsl, both composed after this file.
// On lavapipe every storage-buffer load is a loop over the SIMD lanes with a bounds check per
// lane, while a texel fetch is one gather: a GEMV that reads its operands from textures runs
// several times faster there.
//
// Each texture holds its plane as one linear array of texels folded into rows of
// TEXTURE_WIDTH texels: element i sits at (i % TEXTURE_WIDTH, i / TEXTURE_WIDTH).

const TEXTURE_WIDTH: u32 = 4096u;

// Rgba32Uint: one 16-byte chunk per texel.
@group(0) @binding(0) var codes_tex: texture_2d<u32>;
// Rgba32Uint: four param words per texel (a k-quant super-block's scales in one fetch), each
// weight row's params starting at a texel (rows padded to whole texels); with
// CHUNK_PARAM_TEXELS one texel per chunk, indexed as the codes are.
@group(0) @binding(1) var params_tex: texture_2d<u32>;

fn texel(i: u32) -> vec2<u32> {
    return vec2<u32>(i % TEXTURE_WIDTH, i / TEXTURE_WIDTH);
}

fn load_chunk(i: u32) -> vec4<u32> {
    return textureLoad(codes_tex, texel(i), 0);
}

// Chunks of a weight row whose params share one texel, where the texture GEMV fetches each
// row's params once per texel (set by the host where a format's chunks never straddle
// texels); 0: every chunk fetches its own. A chunk's params then come from `param_texels`,
// which the GEMV fills for each of its rows, and the format's `row` argument is the row's
// slot in it.
override PARAM_TEXEL_CHUNKS: u32 = 0u;
var<private> param_texels: array<vec4<u32>, LANES_MAX_ROWS>;

// Words of params per row in the texture: the plane's, padded to whole texels, or a texel
// per chunk.
fn param_texture_row_words() -> u32 {
    if CHUNK_PARAM_TEXELS {
        return 4u * chunks_per_row();
    }
    return (param_row_words() + 3u) & ~3u;
}

// Texel `t` of row `row`'s params.
fn load_param_texel(row: u32, t: u32) -> vec4<u32> {
    return textureLoad(params_tex, texel(row * param_texture_row_words() / 4u + t), 0);
}

// `row` is a row's slot in param_texels where PARAM_TEXEL_CHUNKS > 0 (see gemv_lanes.wgsl).
fn load_row_param_word4(row: u32, w: u32) -> vec4<u32> {
    if PARAM_TEXEL_CHUNKS > 0u {
        return param_texels[row];
    }
    return textureLoad(params_tex, texel((row * param_texture_row_words() + w) / 4u), 0);
}

fn load_row_param_word(row: u32, w: u32) -> u32 {
    if PARAM_TEXEL_CHUNKS > 0u {
        return param_texels[row][w % 4u];
    }
    let i = row * param_texture_row_words() + w;
    return textureLoad(params_tex, texel(i / 4u), 0)[i % 4u];
}

