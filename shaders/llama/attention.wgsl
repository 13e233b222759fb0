// Composed after common.wgsl and reduce.wgsl (see src/llama/gpu.rs).
// Causal attention with grouped-query heads over the KV cache. One workgroup per (query head,
// token): scores of every visible position into a scratch row, softmax, weighted sum of the
// values. Query head h reads key/value head h / (N_HEADS / N_KV_HEADS).

override HEAD_DIM: u32;
override N_HEADS: u32;
override N_KV_HEADS: u32;
// Scratch row length: the longest context this model instance serves.
override MAX_CTX: u32;
const WG: u32 = 64u;
// Largest HEAD_DIM (the host checks).
const MAX_HEAD_DIM: u32 = 256u;

@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k_cache: array<f32>;
@group(0) @binding(3) var<storage, read> v_cache: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read_write> scores: array<f32>;

var<workgroup> q_head: array<f32, MAX_HEAD_DIM>;

@compute @workgroup_size(WG)
fn attention(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let head = wid.x;
    let token = wid.y;
    let kv_head = head / (N_HEADS / N_KV_HEADS);
    let kv_dim = N_KV_HEADS * HEAD_DIM;
    let visible = run.pos0 + token + 1u;
    let q_base = token * N_HEADS * HEAD_DIM + head * HEAD_DIM;
    let row = (token * N_HEADS + head) * MAX_CTX;
    for (var d = lid; d < HEAD_DIM; d += WG) {
        q_head[d] = q[q_base + d];
    }
    workgroupBarrier();
    let scale = inverseSqrt(f32(HEAD_DIM));
    var m = -3.4e38;
    for (var j = lid; j < visible; j += WG) {
        let kb = j * kv_dim + kv_head * HEAD_DIM;
        var s = 0.0;
        for (var d = 0u; d < HEAD_DIM; d++) {
            s += q_head[d] * k_cache[kb + d];
        }
        s *= scale;
        scores[row + j] = s;
        m = max(m, s);
    }
    m = reduce(m, lid, true);
    var total = 0.0;
    for (var j = lid; j < visible; j += WG) {
        let e = exp(scores[row + j] - m);
        scores[row + j] = e;
        total += e;
    }
    total = reduce(total, lid, false);
    // Every lane reads every score below.
    storageBarrier();
    let inv = 1.0 / total;
    for (var d = lid; d < HEAD_DIM; d += WG) {
        var acc = 0.0;
        for (var j = 0u; j < visible; j++) {
            acc += scores[row + j] * v_cache[j * kv_dim + kv_head * HEAD_DIM + d];
        }
        out[q_base + d] = acc * inv;
    }
}
