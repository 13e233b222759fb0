// f16 activations and outputs (composed after common.wgsl, in a module that starts with
// `enable f16;`; needs Features::SHADER_F16). Values are widened to f32 on load and every
// kernel accumulates in f32; each output is rounded to f16 once, on store. Each f16 of y is
// a memory location of its own, so neighbouring stores from different invocations do not
// race.

@group(0) @binding(2) var<storage, read> x: array<vec4<f16>>;
@group(0) @binding(3) var<storage, read_write> y: array<f16>;

// Activation values 4i .. 4i+3, as f32.
fn load_x4(i: u32) -> vec4<f32> {
    return vec4<f32>(x[i]);
}

// Output element i, rounded to f16.
fn store_y(i: u32, v: f32) {
    y[i] = f16(v);
}
