// Tensor-core GEMM (cooperative matrices) for larger batches, on devices with
// Features::EXPERIMENTAL_COOPERATIVE_MATRIX and SHADER_F16. The module starts with
// `enable f16; enable wgpu_cooperative_matrix;` (added by the host's composition, since
// enable directives must precede common.wgsl).
//
// A workgroup computes a TILE_M (weight rows) x TILE_N (activation rows) tile of y. Each
// step along k dequantizes the TILE_M x TILE_K weight slice to f16 in workgroup memory
// (row-major, k fastest) and converts the TILE_N x TILE_K slice of x to f16 the same way;
// then each subgroup multiplies its 32 x 32 warp tile as 2 x 2 fragments of 16x16x16 with
// f32 accumulators. C goes out through workgroup memory (one 16 x 16 f32 scratch per
// subgroup), so ordinary code masks the edges where rows or batch are not tile multiples.
//
// Every coopLoad / coopStore stride is a module constant: naga 30's SPIR-V writer cannot
// take a runtime stride (it panics: "Expression [N] is not cached"), and the y row stride
// (a runtime value) is only used by the masked scalar stores.
//
// Assumption: subgroups of exactly SUBGROUP = 32 invocations, made of consecutive
// local_invocation_index values (NVIDIA). Cooperative matrices are per subgroup, and the
// warp tile a subgroup owns is chosen from local_invocation_index / 32, because naga
// requires coop operations in uniform control flow (no loop over subgroup_id). The host
// refuses this kernel unless the adapter's min and max subgroup size are both 32.
//
// Precision: products are f16 x f16 accumulated in f32. x and the dequantized weights are
// rounded to f16 (relative error 2^-11); values beyond the f16 range (65504) become inf.
//
// NOT RUN on the development machine (lavapipe has no cooperative matrices): it is checked
// by naga only, and must be checked on hardware (scripts/device-bench.sh runs
// `wgquant verify`, whose GEMM cases take this path where the device offers it).

const TILE_M: u32 = 128u;
const TILE_N: u32 = 64u;
const TILE_K: u32 = 32u;
const THREADS: u32 = 256u;
const SUBGROUP: u32 = 32u;
// Subgroups along the weight rows; THREADS / SUBGROUP / WARPS_M along the batch.
const WARPS_M: u32 = 4u;
// Each subgroup's tile: WARP_M x WARP_N = 2 x 2 fragments of 16 x 16.
const WARP_M: u32 = 32u;
const WARP_N: u32 = 32u;
// Row strides (in f16) of the operand tiles: TILE_K plus 8 of padding (80 bytes, a multiple
// of 16 as cooperative loads want), which spreads rows over the memory banks.
const A_STRIDE: u32 = 40u;
const B_STRIDE: u32 = 40u;
// A 16 x 16 fragment, column-major in its scratch.
const FRAG: u32 = 16u;
const FRAG_VALUES: u32 = 256u;

// Weights: element (row r, k kk) at r * A_STRIDE + kk.
var<workgroup> a_tile: array<f16, TILE_M * A_STRIDE>;
// Activations: element (batch row c, k kk) at c * B_STRIDE + kk.
var<workgroup> b_tile: array<f16, TILE_N * B_STRIDE>;
// One fragment of C per subgroup (zeros at the start, for the accumulators' initial value).
var<workgroup> c_scratch: array<f32, (THREADS / SUBGROUP) * FRAG_VALUES>;

// Write fragment `c` (rows r0.., batch rows c0.. of y) through the subgroup's scratch,
// masking the edges. Called in uniform control flow: it contains barriers.
fn store_fragment(c: coop_mat16x16<f32, C>, scratch: u32, lane: u32, r0: u32, c0: u32) {
    // Column-major: element (row m, column n) at n * FRAG + m.
    coopStore(c, &c_scratch[scratch], FRAG);
    workgroupBarrier();
    for (var e = lane; e < FRAG_VALUES; e += SUBGROUP) {
        let row = r0 + e % FRAG;
        let col = c0 + e / FRAG;
        if row < dims.rows && col < dims.n {
            store_y(col * dims.y_stride + dims.row_offset + row, c_scratch[scratch + e]);
        }
    }
    workgroupBarrier();
}

@compute @workgroup_size(THREADS)
fn gemm_coop(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row0 = wid.x * TILE_M;
    let col0 = wid.y * TILE_N;
    let warp = lid / SUBGROUP;
    let lane = lid % SUBGROUP;
    let wm = (warp % WARPS_M) * WARP_M;
    let wn = (warp / WARPS_M) * WARP_N;
    let scratch = warp * FRAG_VALUES;

    for (var i = lid; i < (THREADS / SUBGROUP) * FRAG_VALUES; i += THREADS) {
        c_scratch[i] = 0.0;
    }
    workgroupBarrier();
    var c00 = coopLoad<coop_mat16x16<f32, C>>(&c_scratch[scratch], FRAG);
    var c01 = c00;
    var c10 = c00;
    var c11 = c00;

    for (var k0 = 0u; k0 < dims.k; k0 += TILE_K) {
        // Weight and activation slices as f16; past the ends zeros (gemm_slices.wgsl).
        for (var i = lid; i < TILE_M * (TILE_K / 4u); i += THREADS) {
            let e = weight_slice4(i, TILE_K, row0, k0);
            let h = vec4<f16>(e.v);
            let o = e.r * A_STRIDE + e.kk;
            a_tile[o] = h.x;
            a_tile[o + 1u] = h.y;
            a_tile[o + 2u] = h.z;
            a_tile[o + 3u] = h.w;
        }
        for (var i = lid; i < TILE_N * (TILE_K / 4u); i += THREADS) {
            let e = x_slice4(i, TILE_K, col0, k0);
            let h = vec4<f16>(e.v);
            let o = e.r * B_STRIDE + e.kk;
            b_tile[o] = h.x;
            b_tile[o + 1u] = h.y;
            b_tile[o + 2u] = h.z;
            b_tile[o + 3u] = h.w;
        }
        workgroupBarrier();
        for (var ks = 0u; ks < TILE_K; ks += 16u) {
            // A (rows x k) is row-major in a_tile: coopLoadT. B (k x batch) has element
            // (k, c) at c * B_STRIDE + k: column-major, coopLoad.
            let a0 = coopLoadT<coop_mat16x16<f16, A>>(&a_tile[wm * A_STRIDE + ks], A_STRIDE);
            let a1 = coopLoadT<coop_mat16x16<f16, A>>(
                &a_tile[(wm + 16u) * A_STRIDE + ks],
                A_STRIDE,
            );
            let b0 = coopLoad<coop_mat16x16<f16, B>>(&b_tile[wn * B_STRIDE + ks], B_STRIDE);
            let b1 = coopLoad<coop_mat16x16<f16, B>>(
                &b_tile[(wn + 16u) * B_STRIDE + ks],
                B_STRIDE,
            );
            c00 = coopMultiplyAdd(a0, b0, c00);
            c01 = coopMultiplyAdd(a0, b1, c01);
            c10 = coopMultiplyAdd(a1, b0, c10);
            c11 = coopMultiplyAdd(a1, b1, c11);
        }
        workgroupBarrier();
    }
    let r0 = row0 + wm;
    let c0 = col0 + wn;
    store_fragment(c00, scratch, lane, r0, c0);
    store_fragment(c01, scratch, lane, r0, c0 + 16u);
    store_fragment(c10, scratch, lane, r0 + 16u, c0);
    store_fragment(c11, scratch, lane, r0 + 16u, c0 + 16u);
}
