// GEMV entry for CPU adapters (lavapipe), composed with io_texture.wgsl: every invocation
// computes ROWS whole rows on its own, walking k in order, so all lanes fetch the same x
// texel at the same time and no reduction is needed (no workgroup memory, no barriers, no
// subgroups). On a GPU this access pattern would not coalesce: it is chosen only for CPU
// adapters. Workgroups are small so that a few hundred rows still spread over all cores.

const LANES_WG: u32 = 16u;

@compute @workgroup_size(LANES_WG)
fn gemv_lanes(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let col0 = wid.z * N_COLS;
    let row0 = (linear_workgroup(wid, nwg) * LANES_WG + lid) * ROWS;
    if row0 >= dims.rows {
        return;
    }
    let part = gemv_partial(row0, col0, 0u, 1u);
    for (var r = 0u; r < ROWS; r++) {
        for (var col = 0u; col < N_COLS; col++) {
            store(row0 + r, col0 + col, part.v[r][col]);
        }
    }
}
