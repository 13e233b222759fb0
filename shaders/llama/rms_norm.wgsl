// Composed after common.wgsl and reduce.wgsl (see src/llama/gpu.rs).
// RMSNorm of each activation row: y = x / sqrt(mean(x^2) + EPS) * weight.
// One workgroup per row.

override D: u32;
override EPS: f32;
const WG: u32 = 64u;

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn rms_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    // Uniform per workgroup: the barriers below stay in uniform control flow.
    if wid.x >= run.n {
        return;
    }
    let base = wid.x * D;
    var s = 0.0;
    for (var i = lid; i < D; i += WG) {
        let v = x[base + i];
        s += v * v;
    }
    let r = inverseSqrt(reduce(s, lid, false) / f32(D) + EPS);
    for (var i = lid; i < D; i += WG) {
        y[base + i] = x[base + i] * r * weight[i];
    }
}
