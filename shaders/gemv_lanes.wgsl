// GEMV entry for CPU adapters (lavapipe), composed with io_texture.wgsl: every invocation
// computes ROWS whole rows on its own, walking k in order, so all lanes load the same x
// values at the same time and no reduction is needed (no workgroup memory, no barriers, no
// subgroups). On a GPU this access pattern would not coalesce: it is chosen only for CPU
// adapters. Workgroups are small so that a few hundred rows still spread over all cores.

const LANES_WG: u32 = 16u;
// Most weight rows per invocation. Above GEMV's MAX_ROWS only through lanes_partial
// (PARAM_TEXEL_CHUNKS > 0): the host checks. More rows share each x fetch, which on lavapipe
// is a gather of its own; the host picks 16 only where the format's decoding still fits.
const LANES_MAX_ROWS: u32 = 16u;

struct LanesPartial {
    v: array<array<f32, MAX_N>, LANES_MAX_ROWS>,
}

@compute @workgroup_size(LANES_WG)
fn gemv_lanes(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let col0 = wid.z * N_COLS;
    let row0 = (linear_workgroup(wid, nwg) * LANES_WG + lid) * ROWS;
    if row0 >= dims.rows {
        return;
    }
    var part: LanesPartial;
    if PARAM_TEXEL_CHUNKS == 0u {
        let plain = gemv_partial(row0, col0, 0u, 1u);
        for (var r = 0u; r < min(ROWS, MAX_ROWS); r++) {
            part.v[r] = plain.v[r];
        }
    } else {
        part = lanes_partial(row0, col0);
    }
    for (var r = 0u; r < ROWS; r++) {
        for (var col = 0u; col < N_COLS; col++) {
            store(row0 + r, col0 + col, part.v[r][col]);
        }
    }
}

// gemv_partial's plain loop for formats whose params come a texel per PARAM_TEXEL_CHUNKS
// chunks: each row's texel is fetched once for those chunks (into param_texels) instead of
// once per chunk, and chunk_params gets the row's slot there.
fn lanes_partial(row0: u32, col0: u32) -> LanesPartial {
    let cpr = chunks_per_row();
    var xbase: array<u32, MAX_N>;
    for (var col = 0u; col < N_COLS; col++) {
        xbase[col] = min(col0 + col, dims.n - 1u) * (dims.k / 4u);
    }
    var rows: array<u32, LANES_MAX_ROWS>;
    for (var r = 0u; r < ROWS; r++) {
        rows[r] = min(row0 + r, dims.rows - 1u);
    }
    var acc: LanesPartial;
    for (var t = 0u; t * PARAM_TEXEL_CHUNKS < cpr; t++) {
        for (var r = 0u; r < ROWS; r++) {
            param_texels[r] = load_param_texel(rows[r], t);
        }
        let end = min((t + 1u) * PARAM_TEXEL_CHUNKS, cpr);
        for (var c = t * PARAM_TEXEL_CHUNKS; c < end; c++) {
            var cw: array<vec4<u32>, LANES_MAX_ROWS>;
            var p: array<ChunkParams, LANES_MAX_ROWS>;
            for (var r = 0u; r < ROWS; r++) {
                cw[r] = load_chunk(rows[r] * cpr + c);
                p[r] = chunk_params(r, c);
            }
            // Written out, not add_chunk: lavapipe compiled the call (arrays passed by value)
            // 5x slower for the table formats (mxfp4 4096x4096: 43.6 ms against 7.8).
            for (var j = 0u; j < WORD_VALUES; j++) {
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
    }
    return acc;
}
