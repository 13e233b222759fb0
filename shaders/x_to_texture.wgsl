// Copies x (n rows of k f32, a storage buffer) into the folded Rgba32Float texture that
// io_texture.wgsl reads, one texel (4 values) per invocation. Runs before a texture GEMV.

const TEXTURE_WIDTH: u32 = 4096u;

struct XDims {
    // Texels to copy (n * k / 4).
    texels: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> x_in: array<vec4<f32>>;
@group(0) @binding(1) var x_out: texture_storage_2d<rgba32float, write>;
@group(0) @binding(2) var<uniform> x_dims: XDims;

@compute @workgroup_size(64)
fn x_to_texture(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * 64u + lid;
    if i < x_dims.texels {
        textureStore(x_out, vec2<u32>(i % TEXTURE_WIDTH, i / TEXTURE_WIDTH), x_in[i]);
    }
}
