// RMSNorm of each activation row: y = x / sqrt(mean(x^2) + EPS) * weight.
// One workgroup per row.

override D: u32;
override EPS: f32;
const WG: u32 = 64u;

struct Run {
    // Tokens in this forward call.
    n: u32,
    // Position of the first of them.
    pos0: u32,
}

@group(0) @binding(0) var<uniform> run: Run;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

var<workgroup> partial: array<f32, WG>;

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
    partial[lid] = s;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        if lid < stride {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    let r = inverseSqrt(partial[0] / f32(D) + EPS);
    for (var i = lid; i < D; i += WG) {
        y[base + i] = x[base + i] * r * weight[i];
    }
}
