// GEMV core for a batch of N_COLS <= 8 activation rows (and, on CPU adapters, GEMM in blocks
// of 8 columns): y[c][row] = sum_k w[row][k] * x[c][k].
//
// A "lane group" of invocations computes ROWS weight rows: lane i of `lanes` walks the code
// chunks i, i + lanes, ... of all ROWS rows, so consecutive lanes read consecutive 16-byte
// chunks of a row (coalesced) and each lane loads its slice of x once for ROWS rows and
// N_COLS columns. The lane group then sums its lanes (subgroupAdd in gemv_subgroup.wgsl,
// workgroup memory in gemv_shared.wgsl). Loops have constant bounds (override constants),
// so they unroll and the accumulators stay in registers.

// Activation rows per dispatch (a pipeline per value); workgroup_id.z picks the block of
// N_COLS columns when the batch is larger.
override N_COLS: u32 = 1u;
// Weight rows per lane group.
override ROWS: u32 = 4u;

const MAX_N: u32 = 8u;
const MAX_ROWS: u32 = 8u;
const WG_SIZE: u32 = 64u;

struct Partial {
    v: array<array<f32, MAX_N>, MAX_ROWS>,
}

// This lane's partial sums for rows row0 .. row0 + ROWS and columns col0 .. col0 + N_COLS.
// Rows and columns past the end are clamped (computed twice, never written).
fn gemv_partial(row0: u32, col0: u32, lane: u32, lanes: u32) -> Partial {
    let cpr = chunks_per_row();
    let k4 = dims.k / 4u;
    var xbase: array<u32, MAX_N>;
    for (var col = 0u; col < N_COLS; col++) {
        xbase[col] = min(col0 + col, dims.n - 1u) * k4;
    }
    var rbase: array<u32, MAX_ROWS>;
    var rows: array<u32, MAX_ROWS>;
    for (var r = 0u; r < ROWS; r++) {
        rows[r] = min(row0 + r, dims.rows - 1u);
        rbase[r] = rows[r] * cpr;
    }
    var acc: Partial;
    for (var c = lane; c < cpr; c += lanes) {
        var cw: array<vec4<u32>, MAX_ROWS>;
        var p: array<ChunkParams, MAX_ROWS>;
        for (var r = 0u; r < ROWS; r++) {
            cw[r] = load_chunk(rbase[r] + c);
            p[r] = chunk_params(rows[r], c);
        }
        for (var j = 0u; j < WORD_VALUES; j++) {
            // Each activation vec4 is loaded once for all ROWS rows.
            var xv: array<vec4<f32>, MAX_N>;
            for (var col = 0u; col < N_COLS; col++) {
                xv[col] = load_x4(xbase[col] + c * WORD_VALUES + j);
            }
            for (var r = 0u; r < ROWS; r++) {
                let w = dequant4(cw[r], j, p[r]);
                for (var col = 0u; col < N_COLS; col++) {
                    acc.v[r][col] += dot(w, xv[col]);
                }
            }
        }
    }
    return acc;
}

// Lane groups in the whole dispatch's x/y grid (row groups are strided over them).
fn row_groups() -> u32 {
    return (dims.rows + ROWS - 1u) / ROWS;
}

fn store(row: u32, col: u32, v: f32) {
    if row < dims.rows && col < dims.n {
        store_y(col * dims.y_stride + dims.row_offset + row, v);
    }
}
