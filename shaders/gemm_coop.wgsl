// Tensor-core GEMM (cooperative matrices) for larger batches, on devices with
// Features::EXPERIMENTAL_COOPERATIVE_MATRIX and SHADER_F16. The module starts with
// `enable f16; enable wgpu_cooperative_matrix;` (added by the host's composition, since
// enable directives must precede common.wgsl), and the host's composition puts the fragment
// shape just before this file: FRAG and the fragment types FragA, FragB (f16) and FragC
// (f32), 16 x 16 x 16 (NVIDIA) or 8 x 8 x 8 (lavapipe), whichever the adapter offers.
//
// A workgroup computes a TILE_M (weight rows) x TILE_N (activation rows) tile of y. Each
// step along k dequantizes the TILE_M x TILE_K weight slice to f16 in workgroup memory
// (row-major, k fastest) and converts the TILE_N x TILE_K slice of x to f16 the same way,
// both from registers loaded during the previous step's multiplies; then each subgroup
// multiplies its warp tile as 2 x WARP_N_FRAGS fragments of FRAG x FRAG x FRAG with f32
// accumulators. C goes out through workgroup memory (one fragment of f32 scratch per
// subgroup), so ordinary code masks the edges where rows or batch are not tile multiples.
//
// Every coopLoad / coopStore stride is a module constant: naga 30's SPIR-V writer cannot
// take a runtime stride (it panics: "Expression [N] is not cached"), and the y row stride
// (a runtime value) is only used by the masked scalar stores.
//
// Subgroups: WARPS subgroups of SUBGROUP invocations each, made of consecutive
// local_invocation_index values (NVIDIA's warps of 32, lavapipe's 8). Cooperative matrices are
// per subgroup, and the warp tile a subgroup owns is chosen from local_invocation_index /
// SUBGROUP, because naga requires coop operations in uniform control flow (no loop over
// subgroup_id). The host sets SUBGROUP to the adapter's subgroup size and refuses this kernel
// where the minimum and maximum sizes differ (the size a pipeline gets is then unknown).
//
// Precision: products are f16 x f16 accumulated in f32. x and the dequantized weights are
// rounded to f16 (relative error 2^-11); values beyond the f16 range (65504) become inf.
//
// lavapipe has cooperative matrices from Mesa 25.1 (subgroups of 8): the test suite runs this
// kernel there (scripts/lavapipe-coop.sh); Debian 12's Mesa 22.3 has none.

// Invocations per subgroup (set by the host) and subgroups per workgroup.
override SUBGROUP: u32 = 32u;
const WARPS: u32 = 8u;
override THREADS: u32 = WARPS * SUBGROUP;
// Subgroups along the weight rows; WARPS / WARPS_M along the batch.
const WARPS_M: u32 = 4u;
// Fragments of each subgroup's tile along the batch (set by the host): 2, or 4 for the wide
// batch tile, where each weight slice is dequantized once per twice as many columns, for
// twice the accumulators per invocation.
override WARP_N_FRAGS: u32 = 2u;
const MAX_WARP_N_FRAGS: u32 = 4u;
// Each subgroup's tile: WARP_M x WARP_N = 2 x WARP_N_FRAGS fragments.
const WARP_M: u32 = 2u * FRAG;
override WARP_N: u32 = WARP_N_FRAGS * FRAG;
// The workgroup's tile: 128 x 64 (or 128 wide) with 16 x 16 fragments, 64 x 32 (or 64) with
// 8 x 8.
const TILE_M: u32 = WARPS_M * WARP_M;
override TILE_N: u32 = (WARPS / WARPS_M) * WARP_N;
const MAX_TILE_N: u32 = (WARPS / WARPS_M) * MAX_WARP_N_FRAGS * FRAG;
const TILE_K: u32 = 32u;
// Row strides (in f16) of the operand tiles: TILE_K plus 8 of padding (80 bytes, a multiple
// of 16 as cooperative loads want), which spreads rows over the memory banks.
const A_STRIDE: u32 = 40u;
const B_STRIDE: u32 = 40u;
// A fragment, column-major in its scratch.
const FRAG_VALUES: u32 = FRAG * FRAG;
// Vec4s of the weight and x slices each invocation stages per step along k: TILE_M (or
// TILE_N) x TILE_K / 4 / THREADS, at most 8 for the shapes the host allows (8 x 8 fragments
// on subgroups of 8, 16 x 16 on 16 to 64); the minimum keeps a host mistake in bounds.
const MAX_A_LOADS: u32 = 8u;
const MAX_B_LOADS: u32 = 8u;
fn a_loads() -> u32 {
    return min(TILE_M * (TILE_K / 4u) / THREADS, MAX_A_LOADS);
}
fn b_loads() -> u32 {
    return min(TILE_N * (TILE_K / 4u) / THREADS, MAX_B_LOADS);
}

// Weights: element (row r, k kk) at r * A_STRIDE + kk.
var<workgroup> a_tile: array<f16, TILE_M * A_STRIDE>;
// Activations: element (batch row c, k kk) at c * B_STRIDE + kk.
// (Sized for the wide tile: workgroup arrays take constant sizes here.)
var<workgroup> b_tile: array<f16, MAX_TILE_N * B_STRIDE>;
// One fragment of C per subgroup (zeros at the start, for the accumulators' initial value).
var<workgroup> c_scratch: array<f32, WARPS * FRAG_VALUES>;

// Write fragment `c` (rows r0.., batch rows c0.. of y) through the subgroup's scratch,
// masking the edges. Called in uniform control flow: it contains barriers.
fn store_fragment(c: FragC, scratch: u32, lane: u32, r0: u32, c0: u32) {
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

    for (var i = lid; i < WARPS * FRAG_VALUES; i += THREADS) {
        c_scratch[i] = 0.0;
    }
    workgroupBarrier();
    var c00 = coopLoad<FragC>(&c_scratch[scratch], FRAG);
    var c01 = c00;
    var c10 = c00;
    var c11 = c00;
    // The wide tile's other fragments (unused, and dropped by the compiler, otherwise).
    var c02 = c00;
    var c03 = c00;
    var c12 = c00;
    var c13 = c00;

    // The loads of the first step along k; each later step's are issued before the previous
    // step's multiplies and stored after them (below).
    var wl: array<WeightLoad, MAX_A_LOADS>;
    var xl: array<SliceVec4, MAX_B_LOADS>;
    for (var s = 0u; s < a_loads(); s++) {
        wl[s] = weight_load4(lid + s * THREADS, TILE_K, row0, 0u);
    }
    for (var s = 0u; s < b_loads(); s++) {
        xl[s] = x_slice4(lid + s * THREADS, TILE_K, col0, 0u);
    }

    for (var k0 = 0u; k0 < dims.k; k0 += TILE_K) {
        // Weight and activation slices as f16; past the ends zeros (gemm_slices.wgsl).
        for (var s = 0u; s < a_loads(); s++) {
            let e = weight_decode4(wl[s]);
            let h = vec4<f16>(e.v);
            let o = e.r * A_STRIDE + e.kk;
            a_tile[o] = h.x;
            a_tile[o + 1u] = h.y;
            a_tile[o + 2u] = h.z;
            a_tile[o + 3u] = h.w;
        }
        for (var s = 0u; s < b_loads(); s++) {
            let e = xl[s];
            let h = vec4<f16>(e.v);
            let o = e.r * B_STRIDE + e.kk;
            b_tile[o] = h.x;
            b_tile[o + 1u] = h.y;
            b_tile[o + 2u] = h.z;
            b_tile[o + 3u] = h.w;
        }
        workgroupBarrier();
        // The next step's loads (nothing past the end of k), in flight during the multiplies:
        // with a step's loads issued only after the previous step's multiplies, their whole
        // latency stood between the multiplies of consecutive steps.
        let k1 = k0 + TILE_K;
        for (var s = 0u; s < a_loads(); s++) {
            wl[s] = weight_load4(lid + s * THREADS, TILE_K, row0, k1);
        }
        for (var s = 0u; s < b_loads(); s++) {
            xl[s] = x_slice4(lid + s * THREADS, TILE_K, col0, k1);
        }
        for (var ks = 0u; ks < TILE_K; ks += FRAG) {
            // A (rows x k) is row-major in a_tile: coopLoadT. B (k x batch) has element
            // (k, c) at c * B_STRIDE + k: column-major, coopLoad.
            let a0 = coopLoadT<FragA>(&a_tile[wm * A_STRIDE + ks], A_STRIDE);
            let a1 = coopLoadT<FragA>(
                &a_tile[(wm + FRAG) * A_STRIDE + ks],
                A_STRIDE,
            );
            let b0 = coopLoad<FragB>(&b_tile[wn * B_STRIDE + ks], B_STRIDE);
            let b1 = coopLoad<FragB>(
                &b_tile[(wn + FRAG) * B_STRIDE + ks],
                B_STRIDE,
            );
            c00 = coopMultiplyAdd(a0, b0, c00);
            c01 = coopMultiplyAdd(a0, b1, c01);
            c10 = coopMultiplyAdd(a1, b0, c10);
            c11 = coopMultiplyAdd(a1, b1, c11);
            // An override: uniform, as cooperative operations require.
            if WARP_N_FRAGS == MAX_WARP_N_FRAGS {
                let b2 = coopLoad<FragB>(&b_tile[(wn + 2u * FRAG) * B_STRIDE + ks], B_STRIDE);
                let b3 = coopLoad<FragB>(&b_tile[(wn + 3u * FRAG) * B_STRIDE + ks], B_STRIDE);
                c02 = coopMultiplyAdd(a0, b2, c02);
                c03 = coopMultiplyAdd(a0, b3, c03);
                c12 = coopMultiplyAdd(a1, b2, c12);
                c13 = coopMultiplyAdd(a1, b3, c13);
            }
        }
        workgroupBarrier();
    }
    let r0 = row0 + wm;
    let c0 = col0 + wn;
    store_fragment(c00, scratch, lane, r0, c0);
    store_fragment(c01, scratch, lane, r0, c0 + FRAG);
    store_fragment(c10, scratch, lane, r0 + FRAG, c0);
    store_fragment(c11, scratch, lane, r0 + FRAG, c0 + FRAG);
    if WARP_N_FRAGS == MAX_WARP_N_FRAGS {
        store_fragment(c02, scratch, lane, r0, c0 + 2u * FRAG);
        store_fragment(c03, scratch, lane, r0, c0 + 3u * FRAG);
        store_fragment(c12, scratch, lane, r0 + FRAG, c0 + 2u * FRAG);
        store_fragment(c13, scratch, lane, r0 + FRAG, c0 + 3u * FRAG);
    }
}
