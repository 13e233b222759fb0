// Shared by the tiled GEMMs (gemm.wgsl, gemm_coop.wgsl): the values a workgroup stages for one
// step along k. A slice is `rows` x `tile_k` values read one vec4 along k per flat index i;
// chunks may be wider than the step (2-bit and 1-bit formats), so each vec4 loads its chunk and
// decodes only its own four weights. Rows past the end and k past the tail read as zeros.

struct SliceVec4 {
    // Row of the slice (weight row or batch row, from the slice's first).
    r: u32,
    // Offset along k within the step.
    kk: u32,
    v: vec4<f32>,
}

// Flat index i of the weight slice at rows row0.., k k0.. (tile_k / 4 vec4s per row).
fn weight_slice4(i: u32, tile_k: u32, row0: u32, k0: u32) -> SliceVec4 {
    let r = i / (tile_k / 4u);
    let kk = (i % (tile_k / 4u)) * 4u;
    let row = row0 + r;
    let kg = k0 + kk;
    var v = vec4<f32>(0.0);
    if row < dims.rows && kg < dims.k {
        let cv = chunk_values();
        let chunk = kg / cv;
        v = dequant4(load_chunk(row * chunks_per_row() + chunk), (kg % cv) / 4u, chunk_params(row, chunk));
    }
    return SliceVec4(r, kk, v);
}

// Flat index i of the activation slice at batch rows col0.., k k0...
fn x_slice4(i: u32, tile_k: u32, col0: u32, k0: u32) -> SliceVec4 {
    let c = i / (tile_k / 4u);
    let kk = (i % (tile_k / 4u)) * 4u;
    let col = col0 + c;
    var v = vec4<f32>(0.0);
    if col < dims.n && k0 + kk < dims.k {
        v = load_x4(col * (dims.k / 4u) + (k0 + kk) / 4u);
    }
    return SliceVec4(c, kk, v);
}
