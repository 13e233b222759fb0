// x for the texture GEMV in a storage buffer: the block's columns as f32, filled by
// x_to_buffer in x_copy.wgsl. For x too long for the uniform buffer (x_uniform.wgsl), on
// drivers where this beats a texture (x_texture.wgsl): every lane loads the same x vec4.

@group(0) @binding(2) var<storage, read> x_storage: array<vec4<f32>>;

fn load_x4(i: u32) -> vec4<f32> {
    return x_storage[i];
}
