// f32 activations and outputs (composed after common.wgsl; any device).
// x: activation rows, 4 values per element; y: outputs (dequantize's f32 weights). The
// int8-activation kernels compose with this file only and use x and y directly.

@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

// Activation values 4i .. 4i+3.
fn load_x4(i: u32) -> vec4<f32> {
    return x[i];
}

// Output element i.
fn store_y(i: u32, v: f32) {
    y[i] = v;
}
