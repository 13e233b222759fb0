// Int8 activation quantization (composed after common.wgsl): each workgroup quantizes one
// row of x (dims.n rows of dims.k values) to signed int8 codes, 4 per u32 (value 4i + j in
// byte j of word i, two's complement), and writes one f32 scale per group of ACT_GROUP
// values. Dynamic: s = max |x_row| / 127 for every group of the row. Static
// (STATIC_SCALES): the given per-group scales. q = clamp(round(x / s), -127, 127), rounding
// half away from zero; s == 0 gives q = 0. Same rule as src/quantize/activation.rs, up to
// the GPU's division (Vulkan allows 2.5 ulp): a scale may differ from the CPU's in its last
// bits, and a quotient within that of a half-way point may round the other way.

override STATIC_SCALES: bool = false;

const AQ_WG: u32 = 64u;
const ACT_GROUP: u32 = 32u;

@group(0) @binding(5) var<storage, read_write> xq_out: array<u32>;
@group(0) @binding(6) var<storage, read_write> xs_out: array<f32>;
@group(0) @binding(7) var<storage, read> static_scales: array<f32>;

var<workgroup> amax_part: array<f32, AQ_WG>;

// Round half away from zero (WGSL's round() is half to even).
fn round_away(v: f32) -> f32 {
    let t = trunc(v);
    if abs(v - t) >= 0.5 {
        return t + sign(v);
    }
    return t;
}

fn quant(v: f32, s: f32) -> i32 {
    if s == 0.0 {
        return 0;
    }
    return i32(clamp(round_away(v / s), -127.0, 127.0));
}

@compute @workgroup_size(AQ_WG)
fn act_quant(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = linear_workgroup(wid, nwg);
    // Uniform per workgroup: the 2-D grid may hold a few workgroups past the last row.
    if t >= dims.n {
        return;
    }
    let k4 = dims.k / 4u;
    let groups = dims.k / ACT_GROUP;
    let base = t * k4;
    var m = 0.0;
    if !STATIC_SCALES {
        for (var i = lid; i < k4; i += AQ_WG) {
            let v = abs(load_x4(base + i));
            m = max(m, max(max(v.x, v.y), max(v.z, v.w)));
        }
    }
    amax_part[lid] = m;
    workgroupBarrier();
    for (var stride = AQ_WG / 2u; stride > 0u; stride /= 2u) {
        if lid < stride {
            amax_part[lid] = max(amax_part[lid], amax_part[lid + stride]);
        }
        workgroupBarrier();
    }
    let s_dyn = amax_part[0] / 127.0;
    for (var i = lid; i < k4; i += AQ_WG) {
        var s = s_dyn;
        if STATIC_SCALES {
            s = static_scales[4u * i / ACT_GROUP];
        }
        let v = load_x4(base + i);
        xq_out[base + i] = pack4xI8(vec4<i32>(quant(v.x, s), quant(v.y, s), quant(v.z, s), quant(v.w, s)));
    }
    for (var g = lid; g < groups; g += AQ_WG) {
        var s = s_dyn;
        if STATIC_SCALES {
            s = static_scales[g];
        }
        xs_out[t * groups + g] = s;
    }
}
