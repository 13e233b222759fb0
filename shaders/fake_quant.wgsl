// Fake quantization for quantization-aware training (see src/quantize/fake_quant.rs for the
// rules). One invocation per group of `fq.group` consecutive values: the group's parameters
// are derived (or read) once and its values walked in order, so the LSQ scale gradient is
// summed sequentially (deterministic).
//
// Params are vec2<f32>(s, z) per group, z in the signed code domain (0 for symmetric).

struct FqDims {
    // Groups in this dispatch.
    groups: u32,
    // Values per group.
    group: u32,
    // 1: asymmetric (derive z), 0: symmetric.
    asym: u32,
    // Forward: 1 derives (s, z) from x and writes them to fq_params; 0 reads them.
    // Backward: 1 writes the LSQ scale gradient to fq_gs.
    flag: u32,
    qmin: f32,
    qmax: f32,
    // LSQ gradient scale 1 / sqrt(group * qmax).
    gscale: f32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> fq_x: array<f32>;
@group(0) @binding(1) var<storage, read_write> fq_params: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read_write> fq_y: array<f32>;
@group(0) @binding(3) var<storage, read> fq_gy: array<f32>;
@group(0) @binding(4) var<storage, read_write> fq_gx: array<f32>;
@group(0) @binding(5) var<storage, read_write> fq_gs: array<f32>;
@group(0) @binding(6) var<uniform> fq: FqDims;

const FQ_WG_SIZE: u32 = 64u;

fn fq_group_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * FQ_WG_SIZE + lid;
}

// Round half away from zero (C's roundf). WGSL's round() is half to even. v - trunc(v) is
// exact, so the comparison decides ties exactly.
fn round_away(v: f32) -> f32 {
    let t = trunc(v);
    return select(t, t + sign(v), abs(v - t) >= 0.5);
}

// f16(v) as f32 for a finite v >= 0: round to nearest even at f16 precision (normal and
// subnormal), saturating to 65504. Scaling by powers of two is exact; round() is RNE.
fn f16_round(v: f32) -> f32 {
    let e = i32((bitcast<u32>(v) >> 23u) & 0xffu) - 127;
    let q = max(e, -14) - 10;
    return min(ldexp(round(ldexp(v, -q)), q), 65504.0);
}

fn derive_params(base: u32) -> vec2<f32> {
    if fq.asym != 0u {
        var lo = 0.0;
        var hi = 0.0;
        for (var i = 0u; i < fq.group; i++) {
            let v = fq_x[base + i];
            lo = min(lo, v);
            hi = max(hi, v);
        }
        let s = f16_round((hi - lo) / fq.qmax);
        var z = 0.0;
        if s != 0.0 {
            // abs: +0, never -0, when lo is 0 (as the CPU writes it)
            z = abs(clamp(round_away(-lo / s), 0.0, fq.qmax));
        }
        return vec2<f32>(s, z);
    }
    var amax = 0.0;
    for (var i = 0u; i < fq.group; i++) {
        amax = max(amax, abs(fq_x[base + i]));
    }
    return vec2<f32>(f16_round(amax / fq.qmax), 0.0);
}

@compute @workgroup_size(FQ_WG_SIZE)
fn fake_quant_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = fq_group_index(wid, nwg, lid);
    if g >= fq.groups {
        return;
    }
    let base = g * fq.group;
    var p: vec2<f32>;
    if fq.flag != 0u {
        p = derive_params(base);
        fq_params[g] = p;
    } else {
        p = fq_params[g];
    }
    let s = p.x;
    let z = p.y;
    for (var i = 0u; i < fq.group; i++) {
        var out = 0.0;
        if s != 0.0 {
            let c = round_away(fq_x[base + i] / s) + z;
            out = s * (clamp(c, fq.qmin, fq.qmax) - z);
        }
        fq_y[base + i] = out;
    }
}

@compute @workgroup_size(FQ_WG_SIZE)
fn fake_quant_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = fq_group_index(wid, nwg, lid);
    if g >= fq.groups {
        return;
    }
    let base = g * fq.group;
    let p = fq_params[g];
    let s = p.x;
    let z = p.y;
    var acc = 0.0;
    for (var i = 0u; i < fq.group; i++) {
        let dy = fq_gy[base + i];
        var dx = dy;
        if s != 0.0 {
            let t = fq_x[base + i] / s;
            let r = round_away(t);
            let c = r + z;
            var term = r - t;
            if c < fq.qmin {
                dx = 0.0;
                term = fq.qmin - z;
            } else if c > fq.qmax {
                dx = 0.0;
                term = fq.qmax - z;
            }
            acc += dy * term;
        }
        fq_gx[base + i] = dx;
    }
    if fq.flag != 0u {
        fq_gs[g] = acc * fq.gscale;
    }
}
