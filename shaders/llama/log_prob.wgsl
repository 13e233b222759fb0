// Composed after common.wgsl and reduce.wgsl (see src/llama/gpu.rs).
// Log-probability of the next token at each position: out[i] = log softmax(logits[i])[next[i]],
// or 0 where next[i] is not a token id (the host pads with 0xffffffff where no next token is
// known). One workgroup per row.

override VOCAB: u32;
const WG: u32 = 256u;

@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> next: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn log_prob(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = wid.x;
    if row >= run.n {
        return;
    }
    let base = row * VOCAB;
    var m = -3.4e38;
    for (var j = lid; j < VOCAB; j += WG) {
        m = max(m, logits[base + j]);
    }
    m = reduce(m, lid, true);
    var s = 0.0;
    for (var j = lid; j < VOCAB; j += WG) {
        s += exp(logits[base + j] - m);
    }
    s = reduce(s, lid, false);
    if lid == 0u {
        let t = next[row];
        out[row] = select(0.0, logits[base + min(t, VOCAB - 1u)] - m - log(s), t < VOCAB);
    }
}
