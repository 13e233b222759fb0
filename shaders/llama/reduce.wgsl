// A workgroup-wide maximum or sum, for op kernels that declare `const WG` (their workgroup
// size, a power of two). Call it from uniform control flow.

var<workgroup> partial: array<f32, WG>;

// The maximum (max_not_sum) or sum of `v` over the workgroup; every lane gets the result.
fn reduce(v: f32, lid: u32, max_not_sum: bool) -> f32 {
    partial[lid] = v;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        if lid < stride {
            let o = partial[lid + stride];
            partial[lid] = select(partial[lid] + o, max(partial[lid], o), max_not_sum);
        }
        workgroupBarrier();
    }
    let r = partial[0];
    workgroupBarrier();
    return r;
}
