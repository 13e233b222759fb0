// Int8-activation GEMV (composed after common.wgsl, without the format's WGSL): for N_COLS
// <= 8 rows of int8 activations (from act_quant.wgsl) and weights with signed integer codes,
//   y[c][row] = sum_g s_w(row, block(g)) * s_x(c, g) * acc(c, row, g),
//   acc(c, row, g) = sum_{i in group g} code_w(row, i) * code_x(c, i)   (exact i32),
// over groups g of ACT_GROUP = 32 values, with dot4I8Packed (4 products per call).
// A workgroup of WG_SIZE lanes computes ROWS_I8 weight rows: lane i walks groups i,
// i + WG_SIZE, ...; the lanes are summed through workgroup memory (workgroup_sum.wgsl).
// DEBUG_ACC also writes every acc to acc_out[((c * y_stride) + row_offset + row) * groups + g].

// Weight codes: 0 = signed bytes (Q8_0), 1 = bytes with zero point 128 (symmetric int8),
// 2 = nibbles with zero point 8 (symmetric int4).
override W_KIND: u32 = 0u;
override N_COLS: u32 = 1u;
override DEBUG_ACC: bool = false;

const MAX_N: u32 = 8u;
const ROWS_I8: u32 = 4u;
const WG_SIZE: u32 = 64u;
const ACT_GROUP: u32 = 32u;

@group(0) @binding(5) var<storage, read> xq: array<vec4<u32>>;
@group(0) @binding(6) var<storage, read> xs: array<f32>;
@group(0) @binding(7) var<storage, read_write> acc_out: array<i32>;

// 32 signed int8 weight codes, 4 per u32.
struct Codes8 {
    a: vec4<u32>,
    b: vec4<u32>,
}

// 4 nibbles (the low 16 bits of h, nibble j = value j) to 4 signed bytes nibble - 8.
fn spread_nibbles(h: u32) -> u32 {
    let t = (h | (h << 8u)) & 0x00ff00ffu;
    let u = (t | (t << 4u)) & 0x0f0f0f0fu;
    // n ^ 8 is n - 8 for n >= 8; for n < 8 it has bit 3 set, which sign-extends to 0xf0.
    let f = u ^ 0x08080808u;
    return f | ((f & 0x08080808u) * 0x1eu);
}

fn spread_word(w: u32) -> vec2<u32> {
    return vec2<u32>(spread_nibbles(w & 0xffffu), spread_nibbles(w >> 16u));
}

fn weight_group(row: u32, g: u32) -> Codes8 {
    if W_KIND == 2u {
        let c = load_chunk(row * (dims.k / 32u) + g);
        let p0 = spread_word(c.x);
        let p1 = spread_word(c.y);
        let p2 = spread_word(c.z);
        let p3 = spread_word(c.w);
        return Codes8(vec4<u32>(p0, p1), vec4<u32>(p2, p3));
    }
    let cpr = dims.k / 16u;
    var a = load_chunk(row * cpr + 2u * g);
    var b = load_chunk(row * cpr + 2u * g + 1u);
    if W_KIND == 1u {
        a ^= vec4<u32>(0x80808080u);
        b ^= vec4<u32>(0x80808080u);
    }
    return Codes8(a, b);
}

fn weight_scale(row: u32, g: u32) -> f32 {
    return f16_bits_to_f32(param_half(row, g * ACT_GROUP / BLOCK_VALUES, 0u));
}

fn dot32(w: Codes8, a: vec4<u32>, b: vec4<u32>) -> i32 {
    return dot4I8Packed(w.a.x, a.x) + dot4I8Packed(w.a.y, a.y) + dot4I8Packed(w.a.z, a.z)
        + dot4I8Packed(w.a.w, a.w) + dot4I8Packed(w.b.x, b.x) + dot4I8Packed(w.b.y, b.y)
        + dot4I8Packed(w.b.z, b.z) + dot4I8Packed(w.b.w, b.w);
}

@compute @workgroup_size(WG_SIZE)
fn gemv_i8(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let col0 = wid.z * N_COLS;
    // Uniform per workgroup; the grid holds no workgroup past the last row group.
    let row0 = linear_workgroup(wid, nwg) * ROWS_I8;
    let groups = dims.k / ACT_GROUP;
    let k16 = dims.k / 16u;
    var cols: array<u32, MAX_N>;
    for (var col = 0u; col < N_COLS; col++) {
        cols[col] = min(col0 + col, dims.n - 1u);
    }
    var rows: array<u32, ROWS_I8>;
    for (var r = 0u; r < ROWS_I8; r++) {
        rows[r] = min(row0 + r, dims.rows - 1u);
    }
    var acc: array<array<f32, MAX_N>, ROWS_I8>;
    for (var g = lid; g < groups; g += WG_SIZE) {
        var xa: array<vec4<u32>, MAX_N>;
        var xb: array<vec4<u32>, MAX_N>;
        var sx: array<f32, MAX_N>;
        for (var col = 0u; col < N_COLS; col++) {
            xa[col] = xq[cols[col] * k16 + 2u * g];
            xb[col] = xq[cols[col] * k16 + 2u * g + 1u];
            sx[col] = xs[cols[col] * groups + g];
        }
        for (var r = 0u; r < ROWS_I8; r++) {
            let wc = weight_group(rows[r], g);
            let sw = weight_scale(rows[r], g);
            for (var col = 0u; col < N_COLS; col++) {
                let d = dot32(wc, xa[col], xb[col]);
                acc[r][col] += (sw * sx[col]) * f32(d);
                if DEBUG_ACC && row0 + r < dims.rows && col0 + col < dims.n {
                    let o = (col0 + col) * dims.y_stride + dims.row_offset + row0 + r;
                    acc_out[o * groups + g] = d;
                }
            }
        }
    }
    for (var r = 0u; r < ROWS_I8; r++) {
        for (var col = 0u; col < N_COLS; col++) {
            lane_sums[r * N_COLS + col][lid] = acc[r][col];
        }
    }
    sum_lanes(lid, ROWS_I8 * N_COLS);
    if lid < ROWS_I8 * N_COLS {
        let r = lid / N_COLS;
        let col = lid % N_COLS;
        if row0 + r < dims.rows && col0 + col < dims.n {
            y[(col0 + col) * dims.y_stride + dims.row_offset + row0 + r] = lane_sums[lid][0];
        }
    }
}
