// Shared by every kernel: layout constants, the dims uniform and unpacking helpers.
// A kernel module is composed as: common.wgsl + where its operands live + formats/<format>.wgsl
// + <kernel>.wgsl. Operands are either weights_buffer.wgsl (codes and params in storage
// buffers) followed by act_<type>.wgsl (x and y, with `enable f16;` first when the type is
// f16), or io_texture.wgsl (weights in textures, f32 y: CPU adapters) followed by
// x_texture.wgsl or x_uniform.wgsl (x in a texture or a uniform buffer). Between them they
// define:
//   fn load_chunk(i: u32) -> vec4<u32>  chunk i of the codes plane
//   fn load_row_param_word(row: u32, w: u32) -> u32         word w of row `row`'s params
//   fn load_row_param_word4(row: u32, w: u32) -> vec4<u32>  its words w .. w + 3 (w a
//                                       multiple of 4, for rows of a multiple of 4 words)
//   fn load_x4(i: u32) -> vec4<f32>     activation values 4i .. 4i+3, as f32
//   fn store_y(i: u32, v: f32)          output element i
//
// Layout (see src/format/mod.rs): a weight row is `k / (4 * WORD_VALUES)` vec4<u32> "chunks"
// of codes; a block of BLOCK_VALUES weights has PARAM_HALVES 16-bit params, laid out by the
// format as it likes within the block's share of the row's params.
//
// A format file defines:
//   struct ChunkParams { ... }                       whatever one chunk needs besides codes
//   fn chunk_params(row: u32, chunk: u32) -> ChunkParams    loads it (chunk index within row)
//   fn dequant4(c: vec4<u32>, j: u32, p: ChunkParams) -> vec4<f32>
//                                                    weights 4j .. 4j+3 of the chunk, j < WORD_VALUES
// and, where its codec gathers a chunk's params into a texel of their own (Rust's
// `Codec::chunk_param_texel`), `chunk_params_from_texel(t: vec4<u32>) -> ChunkParams`,
// which its chunk_params calls when CHUNK_PARAM_TEXELS is set.

// Weights per u32 code word: 8 (4-bit), 4 (8-bit), 1 (f32). Set by the host from the codec.
override WORD_VALUES: u32 = 8u;
// Weights per block (one set of params).
override BLOCK_VALUES: u32 = 32u;
// 16-bit params per block.
override PARAM_HALVES: u32 = 1u;
// The params are one texel (four words) per chunk, in the format's texel layout instead of
// the params plane's: the texture GEMV's, for formats that have such a layout. Set by the
// host; buffers always hold the params plane.
override CHUNK_PARAM_TEXELS: bool = false;

struct Dims {
    // Row length (inner dimension).
    k: u32,
    // Weight rows in this binding chunk.
    rows: u32,
    // Activation rows (batch).
    n: u32,
    // Index of this chunk's first row among all output rows.
    row_offset: u32,
    // Row stride of y: total output rows (gemv/gemm) or k (dequantize).
    y_stride: u32,
    // Blocks per weight row.
    blocks_per_row: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(4) var<uniform> dims: Dims;

// Values in one vec4<u32> chunk of codes.
fn chunk_values() -> u32 {
    return 4u * WORD_VALUES;
}

// Chunks per weight row.
fn chunks_per_row() -> u32 {
    return dims.k / chunk_values();
}

// 32-bit words of params per weight row (the params plane, row after row).
fn param_row_words() -> u32 {
    return (dims.blocks_per_row * PARAM_HALVES + 1u) / 2u;
}

// The 16-bit param `h` of block `block` in row `row`.
fn param_half(row: u32, block: u32, h: u32) -> u32 {
    let idx = block * PARAM_HALVES + h;
    return (load_row_param_word(row, idx / 2u) >> (16u * (idx & 1u))) & 0xffffu;
}

// Word `w` of row `row`'s params.
fn param_word(row: u32, w: u32) -> u32 {
    return load_row_param_word(row, w);
}

// Words w .. w + 3 of row `row`'s params, for formats whose rows have a multiple of 4 param
// words and `w` a multiple of 4 (one texel where the params are a texture).
fn param_word4(row: u32, w: u32) -> vec4<u32> {
    return load_row_param_word4(row, w);
}

// The block a chunk lies in (chunks never straddle blocks when BLOCK_VALUES >= chunk size).
fn chunk_block(chunk: u32) -> u32 {
    return chunk * chunk_values() / BLOCK_VALUES;
}

// Params 2b and 2b + 1 of row `row` (one word: a block's two halves when PARAM_HALVES == 2).
fn param_pair(row: u32, b: u32) -> vec2<u32> {
    let w = load_row_param_word(row, b);
    return vec2<u32>(w & 0xffffu, w >> 16u);
}

// An f16 stored in the low 16 bits of a u32.
fn f16_bits_to_f32(bits: u32) -> f32 {
    return unpack2x16float(bits).x;
}

// Weights 4j..4j+3 of a chunk of 4-bit codes (nibble i of word w = weight 8w + i), unsigned.
fn nibbles4(c: vec4<u32>, j: u32) -> vec4<f32> {
    let word = c[j / 2u] >> (16u * (j & 1u));
    return vec4<f32>(vec4<u32>(word, word >> 4u, word >> 8u, word >> 12u) & vec4<u32>(15u));
}

// Weights 4j..4j+3 of a chunk of 8-bit codes, unsigned.
fn ubytes4(c: vec4<u32>, j: u32) -> vec4<f32> {
    return vec4<f32>(unpack4xU8(c[j]));
}

// Weights 4j..4j+3 of a chunk of 8-bit codes, two's complement.
fn sbytes4(c: vec4<u32>, j: u32) -> vec4<f32> {
    return vec4<f32>(unpack4xI8(c[j]));
}

// Row index for workgroup-per-row kernels dispatched as a 2-D grid (to pass the 65535 limit).
fn linear_workgroup(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}
