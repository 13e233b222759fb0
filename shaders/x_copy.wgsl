// Copies the rows of x (n rows of k values, a storage buffer) of one block of columns to
// where the texture GEMV reads them, one vec4 per invocation, before that block's texture
// GEMV dispatch: into the folded Rgba32Float texture of x_texture.wgsl (x_to_texture) or
// into the buffer x_uniform.wgsl or x_storage.wgsl binds (x_to_buffer), as f32. x_in_f32.wgsl
// or x_in_f16.wgsl, composed before this file, reads x (`x_in4`).

const TEXTURE_WIDTH: u32 = 4096u;

struct XDims {
    // vec4s to copy (a block of columns' k / 4 each).
    texels: u32,
    // The first of them in x.
    first: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(1) var x_out: texture_storage_2d<rgba32float, write>;
@group(0) @binding(2) var<uniform> x_dims: XDims;
@group(0) @binding(3) var<storage, read_write> x_out_buffer: array<vec4<f32>>;

fn copy_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * 64u + lid;
}

@compute @workgroup_size(64)
fn x_to_texture(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = copy_index(wid, nwg, lid);
    if i < x_dims.texels {
        textureStore(x_out, vec2<u32>(i % TEXTURE_WIDTH, i / TEXTURE_WIDTH), x_in4(x_dims.first + i));
    }
}

@compute @workgroup_size(64)
fn x_to_buffer(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = copy_index(wid, nwg, lid);
    if i < x_dims.texels {
        x_out_buffer[i] = x_in4(x_dims.first + i);
    }
}
