// Dequantize weights to f32: y[(row - row_offset) * k + i] = w[row][i] for the rows
// row_offset .. row_offset + rows of one weight binding; y is bound at that slice.
// One invocation per code chunk.

const WG_SIZE: u32 = 64u;

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
    let cw = codes[chunk];
    let p = chunk_params(row, chunk % cpr);
    let base = local * cv;
    for (var j = 0u; j < WORD_VALUES; j++) {
        let v = dequant4(cw, j, p);
        y[base + 4u * j + 0u] = v.x;
        y[base + 4u * j + 1u] = v.y;
        y[base + 4u * j + 2u] = v.z;
        y[base + 4u * j + 3u] = v.w;
    }
}
