// GEMV entry without subgroups: the workgroup is one lane group of WG_SIZE lanes for ROWS
// (at most SHARED_MAX_ROWS) rows, reduced through workgroup memory (workgroup_sum.wgsl).

const SHARED_MAX_ROWS: u32 = 4u;

@compute @workgroup_size(WG_SIZE)
fn gemv(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let col0 = wid.z * N_COLS;
    let row0 = linear_workgroup(wid, nwg) * ROWS;
    // Uniform per workgroup; the grid holds no workgroup past the last row group.
    let part = gemv_partial(row0, col0, lid, WG_SIZE);
    for (var r = 0u; r < ROWS; r++) {
        for (var col = 0u; col < N_COLS; col++) {
            lane_sums[r * N_COLS + col][lid] = part.v[r][col];
        }
    }
    sum_lanes(lid, ROWS * N_COLS);
    if lid < ROWS * N_COLS {
        store(row0 + lid / N_COLS, col0 + lid % N_COLS, lane_sums[lid][0]);
    }
}
