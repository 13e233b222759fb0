// Tiled GEMM for larger batches: a workgroup computes a TILE_M (weight rows) x TILE_N
// (activation rows) tile of y. Each step dequantizes a TILE_M x TILE_K slice of weights
// and loads the matching TILE_N x TILE_K slice of x into workgroup memory; invocation
// (tx, ty) accumulates the 4 x 4 block of weight rows 4ty.. and activation rows 4tx.. in
// four vec4 registers, reading one vec4 of each slice per step along k (no arrays in
// registers: a driver that cannot promote an indexed array keeps it in slow local memory).

const TILE_M: u32 = 64u;
const TILE_N: u32 = 64u;
const TILE_K: u32 = 32u;
const WG_X: u32 = 16u;
const WG_Y: u32 = 16u;
const THREADS: u32 = WG_X * WG_Y;

// The weight slice, then the x slice, each k-major: element (kk, r) of a slice `width` rows
// wide is component r % 4 of vec4 kk * width / 4 + (r / 4 + kk / 4) % (width / 4), so one vec4
// read gives four consecutive rows (or activation rows) at one k. The skew kk / 4 spreads
// the staging stores over all 32 banks: a warp's lanes stage 4 rows at the 8 k offsets 0, 4,
// .. 28, and unskewed those lay multiples of 64 words apart, in one bank (an 8-way conflict
// on every store). The compute loop reads the same vec4s, rotated per 4 k.
const X_SLICE: u32 = TILE_K * TILE_M / 4u;
var<workgroup> tiles: array<vec4<f32>, TILE_K * (TILE_M + TILE_N) / 4u>;

// Stage e (four consecutive k of one row) into the slice at `offset`, `width` rows wide.
fn stage4(offset: u32, width: u32, e: SliceVec4) {
    let w4 = width / 4u;
    let base = offset + e.kk * w4 + (e.r / 4u + e.kk / 4u) % w4;
    let c = e.r % 4u;
    tiles[base][c] = e.v.x;
    tiles[base + w4][c] = e.v.y;
    tiles[base + 2u * w4][c] = e.v.z;
    tiles[base + 3u * w4][c] = e.v.w;
}

@compute @workgroup_size(WG_X, WG_Y)
fn gemm(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid3: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row0 = wid.x * TILE_M;
    let col0 = wid.y * TILE_N;
    // acc_i[j]: weight row 4ty + i, activation row 4tx + j.
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);

    for (var k0 = 0u; k0 < dims.k; k0 += TILE_K) {
        for (var i = lid; i < TILE_M * (TILE_K / 4u); i += THREADS) {
            stage4(0u, TILE_M, weight_slice4(i, TILE_K, row0, k0));
        }
        for (var i = lid; i < TILE_N * (TILE_K / 4u); i += THREADS) {
            stage4(X_SLICE, TILE_N, x_slice4(i, TILE_K, col0, k0));
        }
        workgroupBarrier();
        for (var kq = 0u; kq < TILE_K / 4u; kq++) {
            // This invocation's vec4s within each k-row of the skewed slices.
            let ia = (lid3.y + kq) % (TILE_M / 4u);
            let ib = X_SLICE + (lid3.x + kq) % (TILE_N / 4u);
            for (var k = 0u; k < 4u; k++) {
                let kk = 4u * kq + k;
                let a = tiles[kk * (TILE_M / 4u) + ia];
                let b = tiles[kk * (TILE_N / 4u) + ib];
                acc0 = fma(vec4<f32>(a.x), b, acc0);
                acc1 = fma(vec4<f32>(a.y), b, acc1);
                acc2 = fma(vec4<f32>(a.z), b, acc2);
                acc3 = fma(vec4<f32>(a.w), b, acc3);
            }
        }
        workgroupBarrier();
    }
    let row = row0 + 4u * lid3.y;
    let col = col0 + 4u * lid3.x;
    store4(row, col, acc0);
    store4(row + 1u, col, acc1);
    store4(row + 2u, col, acc2);
    store4(row + 3u, col, acc3);
}

// Weight row `row`'s outputs for activation rows col .. col + 3 (those inside y).
fn store4(row: u32, col: u32, v: vec4<f32>) {
    if row >= dims.rows {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        if col + j < dims.n {
            store_y((col + j) * dims.y_stride + dims.row_offset + row, v[j]);
        }
    }
}
