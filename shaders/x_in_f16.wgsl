// f16 x for x_copy.wgsl, four halves per element, widened to f32 exactly (no `enable f16`
// needed).

@group(0) @binding(0) var<storage, read> x_in: array<vec2<u32>>;

fn x_in4(i: u32) -> vec4<f32> {
    let h = x_in[i];
    return vec4<f32>(unpack2x16float(h.x), unpack2x16float(h.y));
}
