// x for the texture GEMV in a uniform buffer, where all of it fits: every lane of an
// invocation group loads the same x values, and lavapipe loads a uniform at one offset for
// all lanes once, where a texel fetch gathers per lane (q4_0 4096x4096, one thread: 5.2 ms
// with x in a texture, 4.8-4.9 here). Filled by x_to_uniform in x_copy.wgsl.

// vec4s of x the binding holds: 64 KiB, the uniform binding size every wgpu device offers
// beyond the downlevel defaults (the host checks the device's limit).
const X_UNIFORM_VEC4S: u32 = 4096u;

@group(0) @binding(2) var<uniform> x_uniform: array<vec4<f32>, X_UNIFORM_VEC4S>;

fn load_x4(i: u32) -> vec4<f32> {
    return x_uniform[i];
}
