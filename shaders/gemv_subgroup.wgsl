// GEMV entry for devices with subgroups: every subgroup is a lane group of its own (any
// subgroup size), reduced with subgroupAdd; no workgroup memory, no barriers. The host
// sizes the grid for the device's smallest subgroup size; with larger subgroups each one
// strides over more row groups.

@compute @workgroup_size(WG_SIZE)
fn gemv_subgroup(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
    @builtin(subgroup_size) sg_size: u32,
    @builtin(subgroup_id) sg: u32,
    @builtin(num_subgroups) nsg: u32,
) {
    // A subgroup larger than the workgroup holds only WG_SIZE invocations.
    let lanes = min(sg_size, WG_SIZE);
    let col0 = wid.z * N_COLS;
    let groups = row_groups();
    let stride = nwg.x * nwg.y * nsg;
    for (var g = linear_workgroup(wid, nwg) * nsg + sg; g < groups; g += stride) {
        let row0 = g * ROWS;
        let part = gemv_partial(row0, col0, lane, lanes);
        for (var r = 0u; r < ROWS; r++) {
            for (var col = 0u; col < N_COLS; col++) {
                let s = subgroupAdd(part.v[r][col]);
                if lane == 0u {
                    store(row0 + r, col0 + col, s);
                }
            }
        }
    }
}
