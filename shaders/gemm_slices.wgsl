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

// One vec4 of the weight slice as loaded, not yet decoded: a kernel can issue the loads of
// its next step along k and decode them after this step's arithmetic.
struct WeightLoad {
    r: u32,
    kk: u32,
    // False past the rows' or k's end (nothing loaded): decodes to zeros.
    inside: bool,
    codes: vec4<u32>,
    params: ChunkParams,
    // Which four weights of the chunk (dequant4's j).
    j: u32,
}

// Flat index i of the weight slice at rows row0.., k k0.. (tile_k / 4 vec4s per row).
fn weight_load4(i: u32, tile_k: u32, row0: u32, k0: u32) -> WeightLoad {
    // Zero-initialised: codes and params stay zeros where nothing is loaded.
    var w: WeightLoad;
    w.r = i / (tile_k / 4u);
    w.kk = (i % (tile_k / 4u)) * 4u;
    let row = row0 + w.r;
    let kg = k0 + w.kk;
    if row < dims.rows && kg < dims.k {
        let cv = chunk_values();
        let chunk = kg / cv;
        w.inside = true;
        w.codes = load_chunk(row * chunks_per_row() + chunk);
        w.params = chunk_params(row, chunk);
        w.j = (kg % cv) / 4u;
    }
    return w;
}

fn weight_decode4(w: WeightLoad) -> SliceVec4 {
    var v = vec4<f32>(0.0);
    if w.inside {
        v = dequant4(w.codes, w.j, w.params);
    }
    return SliceVec4(w.r, w.kk, v);
}

// weight_load4, decoded.
fn weight_slice4(i: u32, tile_k: u32, row0: u32, k0: u32) -> SliceVec4 {
    return weight_decode4(weight_load4(i, tile_k, row0, k0));
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
