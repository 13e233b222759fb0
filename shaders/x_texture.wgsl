// x for the texture GEMV, in a folded Rgba32Float texture: four values per texel, texel i at
// texel(i) (io_texture.wgsl). Filled by x_to_texture in x_copy.wgsl.
@group(0) @binding(2) var x_tex: texture_2d<f32>;

fn load_x4(i: u32) -> vec4<f32> {
    return textureLoad(x_tex, texel(i), 0);
}
