// Sums over the WG_SIZE lanes of a workgroup through workgroup memory, for the GEMVs whose lane
// group is a whole workgroup (gemv_shared.wgsl, gemv_i8.wgsl; WG_SIZE is theirs). Each lane
// writes its value i to `lane_sums[i][lid]`, then `sum_lanes` adds them up: value i's total
// ends in `lane_sums[i][0]`.
// Value-major, so one value's lanes are consecutive words and the 32 lanes of a warp touch 32
// different banks. Lane-major (`[lid][i]`, 32 values per lane) put all of a warp's lanes 32
// words apart, in one bank: every store and every step of the sum was a 32-way conflict.

// Values per lane: GEMV_MAX_COLS columns x 4 rows (SHARED_MAX_ROWS, ROWS_I8).
const SUM_VALUES: u32 = 32u;

var<workgroup> lane_sums: array<array<f32, WG_SIZE>, SUM_VALUES>;

// Add values 0 .. count of all lanes in log2(WG_SIZE) halving steps. Call from uniform
// control flow after each lane has written its values.
fn sum_lanes(lid: u32, count: u32) {
    workgroupBarrier();
    for (var stride = WG_SIZE / 2u; stride > 0u; stride /= 2u) {
        if lid < stride {
            for (var i = 0u; i < count; i++) {
                lane_sums[i][lid] += lane_sums[i][lid + stride];
            }
        }
        workgroupBarrier();
    }
}
