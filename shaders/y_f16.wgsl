// f16 outputs of the texture GEMV (composed after io_texture.wgsl, in a module that starts
// with `enable f16;`): each output rounded once, as act_f16.wgsl stores them; each f16 is a
// memory location of its own, so neighbouring stores do not race.

@group(0) @binding(3) var<storage, read_write> y: array<f16>;

fn store_y(i: u32, v: f32) {
    y[i] = f16(v);
}
