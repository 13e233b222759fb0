// GEMV entry without subgroups: the workgroup is one lane group of WG_SIZE lanes for ROWS
// (at most SHARED_MAX_ROWS) rows, reduced through workgroup memory in log2(WG_SIZE) steps.

const SHARED_MAX_ROWS: u32 = 4u;

var<workgroup> partial: array<array<f32, MAX_N * SHARED_MAX_ROWS>, WG_SIZE>;

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
            partial[lid][r * MAX_N + col] = part.v[r][col];
        }
    }
    workgroupBarrier();
    for (var stride = WG_SIZE / 2u; stride > 0u; stride /= 2u) {
        if lid < stride {
            for (var r = 0u; r < ROWS; r++) {
                for (var col = 0u; col < N_COLS; col++) {
                    let i = r * MAX_N + col;
                    partial[lid][i] += partial[lid + stride][i];
                }
            }
        }
        workgroupBarrier();
    }
    if lid < ROWS * N_COLS {
        let r = lid / N_COLS;
        let col = lid % N_COLS;
        store(row0 + r, col0 + col, partial[0][r * MAX_N + col]);
    }
}
