// Between two wgquant matmuls: add the layer's bias and apply ReLU, in place.
// `data` holds `count` values, `width` per pixel (one matmul output row per pixel).

struct Params {
    count: u32,
    width: u32,
    relu: u32,
    // Workgroups along x of the dispatch (grids wider than 65535 wrap into y).
    groups_x: u32,
}

@group(0) @binding(0) var<storage, read_write> data: array<f32>;
@group(0) @binding(1) var<storage, read> bias: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(256)
fn bias_act(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wg.y * params.groups_x + wg.x) * 256u + li;
    if i >= params.count {
        return;
    }
    var v = data[i] + bias[i % params.width];
    if params.relu != 0u {
        v = max(v, 0.0);
    }
    data[i] = v;
}
