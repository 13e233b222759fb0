// Shared by IQ4_NL and MXFP4: a 16-entry table of int8 values as a vec4<u32> constant (byte
// i of word w = entry 4w + i), looked up for four 4-bit codes at once. Each code's word is
// picked with selects on its bits 2 and 3 (three vector selects for all four codes; indexing
// the vector per code costs a dynamic extract each, and a const array indexed at run time is
// copied to memory on every access on lavapipe), then its byte is shifted out.
fn int8_table4(t: vec4<u32>, q: vec4<u32>) -> vec4<f32> {
    let b2 = (q & vec4<u32>(4u)) != vec4<u32>(0u);
    let lo = select(vec4<u32>(t.x), vec4<u32>(t.y), b2);
    let hi = select(vec4<u32>(t.z), vec4<u32>(t.w), b2);
    let w = bitcast<vec4<i32>>(select(lo, hi, q >= vec4<u32>(8u)));
    let up = vec4<u32>(24u) - 8u * (q & vec4<u32>(3u));
    return vec4<f32>((w << up) >> vec4<u32>(24u));
}
