// Composed after common.wgsl (see src/llama/gpu.rs).
// Element-wise steps of the block: the SwiGLU gate and the residual add.
// One invocation per element; `run.n` rows of `WIDTH` values.

override WIDTH: u32;
const WG: u32 = 64u;

@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn element(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

// out = silu(a) * b, with a the gate projection and b the up projection.
@compute @workgroup_size(WG)
fn swiglu(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = element(wid, nwg, lid);
    if i >= run.n * WIDTH {
        return;
    }
    let g = a[i];
    out[i] = g / (1.0 + exp(-g)) * b[i];
}

// out += a (the residual stream takes a block's output).
@compute @workgroup_size(WG)
fn add_into(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = element(wid, nwg, lid);
    if i >= run.n * WIDTH {
        return;
    }
    out[i] += a[i];
}
