// GEMV for a batch of n <= MAX_N activation rows: y[c][row] = sum_k w[row][k] * x[c][k].
// One workgroup per weight row; each invocation walks the row's code chunks with stride
// WG_SIZE, dequantizing in registers, so the weights are read exactly once for all n columns.
// The block scale is factored out: sum (s*q + o) x = s * sum q x + o * sum x.

const MAX_N: u32 = 8u;
const WG_SIZE: u32 = 64u;

var<workgroup> partial: array<array<f32, MAX_N>, WG_SIZE>;

@compute @workgroup_size(WG_SIZE)
fn gemv(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = linear_workgroup(wid, nwg);
    if row >= dims.rows {
        return;
    }
    let cpr = chunks_per_row();
    let k4 = dims.k / 4u;
    var acc: array<f32, MAX_N>;
    for (var c = lid; c < cpr; c += WG_SIZE) {
        let cw = codes[row * cpr + c];
        let p = block_params(row, c * chunk_values() / BLOCK_VALUES);
        var sq: array<f32, MAX_N>;
        var sx: array<f32, MAX_N>;
        for (var j = 0u; j < WORD_VALUES; j++) {
            let q = decode(cw, j);
            let xi = c * WORD_VALUES + j;
            for (var col = 0u; col < MAX_N; col++) {
                if col < dims.n {
                    let xv = x[col * k4 + xi];
                    sq[col] += dot(q, xv);
                    sx[col] += dot(xv, vec4<f32>(1.0));
                }
            }
        }
        for (var col = 0u; col < MAX_N; col++) {
            acc[col] += p.x * sq[col] + p.y * sx[col];
        }
    }
    partial[lid] = acc;
    workgroupBarrier();
    for (var stride = WG_SIZE / 2u; stride > 0u; stride /= 2u) {
        if lid < stride {
            for (var col = 0u; col < MAX_N; col++) {
                partial[lid][col] += partial[lid + stride][col];
            }
        }
        workgroupBarrier();
    }
    if lid < dims.n {
        y[lid * dims.y_stride + dims.row_offset + row] = partial[0][lid];
    }
}
