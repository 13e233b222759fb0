// Tiled GEMM for larger batches: a workgroup computes a TILE_M (weight rows) x TILE_N
// (activation rows) tile of y. Each step dequantizes a TILE_M x TILE_K slice of weights
// and loads the matching TILE_N x TILE_K slice of x into workgroup memory; each invocation
// accumulates a 4 x 4 register block.

const TILE_M: u32 = 64u;
const TILE_N: u32 = 64u;
const TILE_K: u32 = 32u;
const WG_X: u32 = 16u;
const WG_Y: u32 = 16u;
const THREADS: u32 = WG_X * WG_Y;

// Stored k-major so the inner loop reads consecutive rows / columns.
var<workgroup> w_tile: array<f32, TILE_K * TILE_M>;
var<workgroup> x_tile: array<f32, TILE_K * TILE_N>;

@compute @workgroup_size(WG_X, WG_Y)
fn gemm(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid3: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row0 = wid.x * TILE_M;
    let col0 = wid.y * TILE_N;
    var acc: array<array<f32, 4>, 4>;

    for (var k0 = 0u; k0 < dims.k; k0 += TILE_K) {
        for (var i = lid; i < TILE_M * (TILE_K / 4u); i += THREADS) {
            let e = weight_slice4(i, TILE_K, row0, k0);
            w_tile[(e.kk + 0u) * TILE_M + e.r] = e.v.x;
            w_tile[(e.kk + 1u) * TILE_M + e.r] = e.v.y;
            w_tile[(e.kk + 2u) * TILE_M + e.r] = e.v.z;
            w_tile[(e.kk + 3u) * TILE_M + e.r] = e.v.w;
        }
        for (var i = lid; i < TILE_N * (TILE_K / 4u); i += THREADS) {
            let e = x_slice4(i, TILE_K, col0, k0);
            x_tile[(e.kk + 0u) * TILE_N + e.r] = e.v.x;
            x_tile[(e.kk + 1u) * TILE_N + e.r] = e.v.y;
            x_tile[(e.kk + 2u) * TILE_N + e.r] = e.v.z;
            x_tile[(e.kk + 3u) * TILE_N + e.r] = e.v.w;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TILE_K; kk++) {
            var a: array<f32, 4>;
            var b: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                a[i] = w_tile[kk * TILE_M + lid3.y + WG_Y * i];
                b[i] = x_tile[kk * TILE_N + lid3.x + WG_X * i];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    acc[i][j] = fma(a[i], b[j], acc[i][j]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let row = row0 + lid3.y + WG_Y * i;
        for (var j = 0u; j < 4u; j++) {
            let col = col0 + lid3.x + WG_X * j;
            if row < dims.rows && col < dims.n {
                store_y(col * dims.y_stride + dims.row_offset + row, acc[i][j]);
            }
        }
    }
}
