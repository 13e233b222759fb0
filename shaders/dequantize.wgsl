// Dequantize weights to f32: y[(row - row_offset) * k + i] = w[row][i] for the rows
// row_offset .. row_offset + rows of one weight binding; y is bound at that slice.
// One invocation per code chunk.

const WG_SIZE: u32 = 64u;

// The weights of one code chunk (codes `cw`, params `p`) to y[base ..].
fn store_chunk(base: u32, cw: vec4<u32>, p: ChunkParams) {
    for (var j = 0u; j < WORD_VALUES; j++) {
        let v = dequant4(cw, j, p);
        store_y(base + 4u * j + 0u, v.x);
        store_y(base + 4u * j + 1u, v.y);
        store_y(base + 4u * j + 2u, v.z);
        store_y(base + 4u * j + 3u, v.w);
    }
}

@compute @workgroup_size(WG_SIZE)
fn dequantize(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let local = linear_workgroup(wid, nwg) * WG_SIZE + lid;
    let cpr = chunks_per_row();
    if local >= dims.rows * cpr {
        return;
    }
    let cv = chunk_values();
    let chunk = dims.row_offset * cpr + local;
    let row = chunk / cpr;
    let cw = load_chunk(chunk);
    let p = chunk_params(row, chunk % cpr);
    store_chunk(local * cv, cw, p);
}

// Row gather (an embedding lookup): y[i * k ..] = w[row_ids[i]] for i < dims.n. Launched once
// per weight binding chunk (rows dims.row_offset .. + dims.rows); a chunk writes only the
// rows it holds, so every output row is written by exactly one launch. The host checks the
// ids against the row count before they reach the GPU.
@group(0) @binding(5) var<storage, read> row_ids: array<u32>;

@compute @workgroup_size(WG_SIZE)
fn gather_rows(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let local = linear_workgroup(wid, nwg) * WG_SIZE + lid;
    let cpr = chunks_per_row();
    if local >= dims.n * cpr {
        return;
    }
    let i = local / cpr;
    let c = local % cpr;
    let row = row_ids[i];
    if row < dims.row_offset || row - dims.row_offset >= dims.rows {
        return;
    }
    let chunk_row = row - dims.row_offset;
    let cw = load_chunk(chunk_row * cpr + c);
    let p = chunk_params(chunk_row, c);
    store_chunk(i * dims.k + c * chunk_values(), cw, p);
}
