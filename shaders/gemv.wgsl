// GEMV core for a batch of N_COLS <= 8 activation rows (and, on CPU adapters, GEMM in blocks
// of 8 columns): y[c][row] = sum_k w[row][k] * x[c][k].
//
// A "lane group" of invocations computes ROWS weight rows. SPLIT consecutive lanes share a
// 16-byte chunk of codes: lane i takes the 4-value steps j = i % SPLIT, i % SPLIT + SPLIT, ...
// of the chunks i / SPLIT, i / SPLIT + lanes / SPLIT, ... of all ROWS rows. So consecutive
// lanes read consecutive chunks of a row (coalesced), and each loads its x values once for
// ROWS rows and N_COLS columns. With SPLIT = 1 a lane reads 8 (4-bit) x vec4s per chunk and
// neighbouring lanes' x reads lie a whole chunk's x (128 bytes) apart: every x load of a
// 32-lane subgroup touches 32 cache lines. Sharing a chunk among SPLIT lanes brings their x
// reads SPLIT times closer together (adjacent at SPLIT = WORD_VALUES), for the price of
// loading the chunk and its params once per lane instead of once per chunk.
// Each lane issues the loads of UNROLL chunks (chunk_stride apart, so every load instruction
// stays coalesced) of all ROWS rows before using any: with one chunk per row in flight, a
// 4096-row GEMV had only 2 MB of loads in flight on a whole H100 and moved 0.9 TB/s.
// The lane group then sums its lanes (subgroupAdd in gemv_subgroup.wgsl,
// workgroup memory in gemv_shared.wgsl). Loops have constant bounds (override constants),
// so they unroll and the accumulators stay in registers.

// Activation rows per dispatch (a pipeline per value); workgroup_id.z picks the block of
// N_COLS columns when the batch is larger.
override N_COLS: u32 = 1u;
// Weight rows per lane group.
override ROWS: u32 = 4u;
// Lanes per chunk of codes: a power of two dividing WORD_VALUES and the lane count (the host
// checks both).
override SPLIT: u32 = 1u;
// Chunks per row each lane loads before computing (ROWS * UNROLL <= MAX_LOADS).
override UNROLL: u32 = 1u;

const MAX_N: u32 = 8u;
const MAX_ROWS: u32 = 8u;
const MAX_UNROLL: u32 = 4u;
// Chunk loads each lane issues before computing: ROWS * UNROLL at most.
const MAX_LOADS: u32 = 8u;
const WG_SIZE: u32 = 64u;

struct Partial {
    v: array<array<f32, MAX_N>, MAX_ROWS>,
}

// Add this lane's products with chunk c of ROWS rows (codes cw, params p): its steps
// sub, sub + SPLIT, ... times x, for N_COLS columns whose x rows start at xbase.
fn add_chunk(
    acc: ptr<function, Partial>,
    c: u32,
    sub: u32,
    xbase: array<u32, MAX_N>,
    cw: array<vec4<u32>, MAX_ROWS>,
    p: array<ChunkParams, MAX_ROWS>,
) {
    for (var step = 0u; step < WORD_VALUES / SPLIT; step++) {
        let j = step * SPLIT + sub;
        // Each activation vec4 is loaded once for all ROWS rows.
        var xv: array<vec4<f32>, MAX_N>;
        for (var col = 0u; col < N_COLS; col++) {
            xv[col] = load_x4(xbase[col] + c * WORD_VALUES + j);
        }
        for (var r = 0u; r < ROWS; r++) {
            let w = dequant4(cw[r], j, p[r]);
            for (var col = 0u; col < N_COLS; col++) {
                (*acc).v[r][col] += dot(w, xv[col]);
            }
        }
    }
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
    let sub = lane % SPLIT;
    // At least 1, so the loop ends even if a host broke the rule above.
    let chunk_stride = max(lanes / SPLIT, 1u);
    var acc: Partial;
    if UNROLL == 1u {
        // The plain loop, with add_chunk written out: CPU adapters run UNROLL = 1, and
        // lavapipe compiled the general loop, or this one calling add_chunk (arrays passed
        // by value), 2-4x slower.
        for (var c = lane / SPLIT; c < cpr; c += chunk_stride) {
            var cw: array<vec4<u32>, MAX_ROWS>;
            var p: array<ChunkParams, MAX_ROWS>;
            for (var r = 0u; r < ROWS; r++) {
                cw[r] = load_chunk(rbase[r] + c);
                p[r] = chunk_params(rows[r], c);
            }
            for (var step = 0u; step < WORD_VALUES / SPLIT; step++) {
                let j = step * SPLIT + sub;
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
    for (var c0 = lane / SPLIT; c0 < cpr; c0 += chunk_stride * UNROLL) {
        var cw: array<array<vec4<u32>, MAX_ROWS>, MAX_UNROLL>;
        var p: array<array<ChunkParams, MAX_ROWS>, MAX_UNROLL>;
        for (var u = 0u; u < UNROLL; u++) {
            // Past the row's end: load the last chunk again, unused below.
            let c = min(c0 + u * chunk_stride, cpr - 1u);
            for (var r = 0u; r < ROWS; r++) {
                cw[u][r] = load_chunk(rbase[r] + c);
                p[u][r] = chunk_params(rows[r], c);
            }
        }
        for (var u = 0u; u < UNROLL; u++) {
            let c = c0 + u * chunk_stride;
            if c >= cpr {
                break;
            }
            add_chunk(&acc, c, sub, xbase, cw[u], p[u]);
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
