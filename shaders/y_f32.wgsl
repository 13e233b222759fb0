// f32 outputs of the texture GEMV (composed after io_texture.wgsl).

@group(0) @binding(3) var<storage, read_write> y: array<f32>;

fn store_y(i: u32, v: f32) {
    y[i] = v;
}
