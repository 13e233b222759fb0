// f32 x for x_copy.wgsl.

@group(0) @binding(0) var<storage, read> x_in: array<vec4<f32>>;

fn x_in4(i: u32) -> vec4<f32> {
    return x_in[i];
}
