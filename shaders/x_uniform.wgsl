// x for the texture GEMV in a uniform buffer, a block of columns per dispatch (as many as
// fit; the host copies each block's x into its own buffer): all lanes load the same
// x values at the same time, and lavapipe loads them from a uniform faster than it fetches a
// texel, a gather per lane (q4_0 4096x4096, one thread, 8 rows per invocation: 5.2 ms with x
// in a texture, 4.8-4.9 here). Filled by x_to_buffer in x_copy.wgsl. The module is built
// without bounds checks: the host binds it only for blocks of at most X_UNIFORM_VEC4S vec4s,
// and the GEMV reads x only below n * k / 4 (n the block's columns).

// vec4s of x the binding holds: 64 KiB, the uniform binding size every wgpu device offers
// beyond the downlevel defaults (the host checks the device's limit).
const X_UNIFORM_VEC4S: u32 = 4096u;

@group(0) @binding(2) var<uniform> x_uniform: array<vec4<f32>, X_UNIFORM_VEC4S>;

fn load_x4(i: u32) -> vec4<f32> {
    return x_uniform[i];
}
