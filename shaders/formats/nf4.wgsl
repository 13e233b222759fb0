// bitsandbytes NF4: w = NF4[q] * absmax, q a 4-bit index in natural order (8 per word),
// absmax an f32 per block of 64 weights, stored as two params halves (one u32 word).
// A chunk is 32 weights, so one block each. The table is bitsandbytes' exact f32 values;
// the product is the same single f32 rounding as on the CPU.
// The table is four vec4 constants, looked up with selects (nf4_values): a dynamically
// indexed array (const or private) goes through memory on CPU Vulkan.
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

// One quarter of the table (`t`, entries 4i .. 4i + 3) looked up for four codes by their
// bits 0 (`b0`) and 1 (`b1`).
fn nf4_quarter(t: vec4<f32>, b0: vec4<bool>, b1: vec4<bool>) -> vec4<f32> {
    let even = select(vec4<f32>(t.x), vec4<f32>(t.z), b1);
    let odd = select(vec4<f32>(t.y), vec4<f32>(t.w), b1);
    return select(even, odd, b0);
}

// The table values of four codes: a tree of selects on the codes' bits, each a select of
// four lanes (15 for the four codes), instead of picking a vec4 constant and then a
// component per code.
fn nf4_values(q: vec4<u32>) -> vec4<f32> {
    let zero = vec4<u32>(0u);
    let b0 = (q & vec4<u32>(1u)) != zero;
    let b1 = (q & vec4<u32>(2u)) != zero;
    let b2 = (q & vec4<u32>(4u)) != zero;
    let b3 = (q & vec4<u32>(8u)) != zero;
    let low = select(nf4_quarter(NF4_0, b0, b1), nf4_quarter(NF4_1, b0, b1), b2);
    let high = select(nf4_quarter(NF4_2, b0, b1), nf4_quarter(NF4_3, b0, b1), b2);
    return select(low, high, b3);
}

fn dequant4(c: vec4<u32>, j: u32, p: ChunkParams) -> vec4<f32> {
    let word = c[j / 2u] >> (16u * (j & 1u));
    let q = vec4<u32>(word, word >> 4u, word >> 8u, word >> 12u) & vec4<u32>(15u);
    return p.absmax * nf4_values(q);
}
