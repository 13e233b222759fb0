// bitsandbytes NF4: w = NF4[q] * absmax, q a 4-bit index in natural order (8 per word),
// absmax an f32 per block of 64 weights, stored as two params halves (one u32 word).
// A chunk is 32 weights, so one block each. The table is bitsandbytes' exact f32 values;
// the product is the same single f32 rounding as on the CPU.
// The table is four vec4 constants, picked with selects and a dynamic vector component:
// a dynamically indexed array (const or private) goes through memory on CPU Vulkan.
const NF4_0 = vec4<f32>(-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453);
const NF4_1 = vec4<f32>(-0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0);
const NF4_2 = vec4<f32>(0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224);
const NF4_3 = vec4<f32>(0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0);

struct ChunkParams {
    absmax: f32,
}

fn chunk_params(row: u32, chunk: u32) -> ChunkParams {
    return ChunkParams(bitcast<f32>(param_word(row, chunk_block(chunk))));
}

// The table values of four codes: a tree of selects on the codes' bits, each a select
// of four lanes, instead of picking a vec4 constant and a component per code.
fn nf4_values(q: vec4<u32>) -> vec4<f32> {
    let b0 = (q & vec4<u32>(1u)) != vec4<u32>(0u);
    let b1 = (q & vec4<u32>(2u)) != vec4<u32>(0u);
    let b2 = (q & vec4<u32>(4u)) != vec4<u32>(0u);
    let b3 = (q & vec4<u32>(8u)) != vec4<u32>(0u);
    // Each quarter of the table: its value for bits 0-1 of each code.
    let q0 = select(select(vec4<f32>(NF4_0.x), vec4<f32>(NF4_0.y), b0), select(vec4<f32>(NF4_0.z), vec4<f32>(NF4_0.w), b0), b1);
    let q1 = select(select(vec4<f32>(NF4_1.x), vec4<f32>(NF4_1.y), b0), select(vec4<f32>(NF4_1.z), vec4<f32>(NF4_1.w), b0), b1);
    let q2 = select(select(vec4<f32>(NF4_2.x), vec4<f32>(NF4_2.y), b0), select(vec4<f32>(NF4_2.z), vec4<f32>(NF4_2.w), b0), b1);
    let q3 = select(select(vec4<f32>(NF4_3.x), vec4<f32>(NF4_3.y), b0), select(vec4<f32>(NF4_3.z), vec4<f32>(NF4_3.w), b0), b1);
    return select(select(q0, q1, b2), select(q2, q3, b2), b3);
}

fn dequant4(c: vec4<u32>, j: u32, p: ChunkParams) -> vec4<f32> {
    let word = c[j / 2u] >> (16u * (j & 1u));
    let q = vec4<u32>(word, word >> 4u, word >> 8u, word >> 12u) & vec4<u32>(15u);
    return p.absmax * nf4_values(q);
}
