// Composed after common.wgsl (see src/llama/gpu.rs).
// RoPE ("normal" llama layout: pairs (2i, 2i + 1) of each head) on the new queries, in place,
// and on the new keys, which go to the key cache with the values beside them.
// One invocation per (token, head, pair); query heads first, then key/value heads.

override HEAD_DIM: u32;
override ROPE_DIMS: u32;
override N_HEADS: u32;
override N_KV_HEADS: u32;
override THETA: f32;
const WG: u32 = 64u;

@group(0) @binding(1) var<storage, read_write> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> k_cache: array<f32>;
@group(0) @binding(5) var<storage, read_write> v_cache: array<f32>;

// The pair (a, b) turned by the angle of dimension 2 * pair at position pos.
fn rotate(a: f32, b: f32, pair: u32, pos: u32) -> vec2<f32> {
    if 2u * pair >= ROPE_DIMS {
        return vec2<f32>(a, b);
    }
    // theta^(-2i/d) as exp2 keeps the f32 error near one ulp.
    let freq = exp2(-f32(2u * pair) / f32(ROPE_DIMS) * log2(THETA));
    let angle = f32(pos) * freq;
    let c = cos(angle);
    let s = sin(angle);
    return vec2<f32>(a * c - b * s, a * s + b * c);
}

@compute @workgroup_size(WG)
fn rope(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let pairs = HEAD_DIM / 2u;
    let heads = N_HEADS + N_KV_HEADS;
    let id = (wid.x + wid.y * nwg.x) * WG + lid;
    if id >= run.n * heads * pairs {
        return;
    }
    let pair = id % pairs;
    let head = (id / pairs) % heads;
    let token = id / (pairs * heads);
    let pos = run.pos0 + token;
    if head < N_HEADS {
        let i = token * N_HEADS * HEAD_DIM + head * HEAD_DIM + 2u * pair;
        let r = rotate(q[i], q[i + 1u], pair, pos);
        q[i] = r.x;
        q[i + 1u] = r.y;
    } else {
        let kv_dim = N_KV_HEADS * HEAD_DIM;
        let off = (head - N_HEADS) * HEAD_DIM + 2u * pair;
        let src = token * kv_dim + off;
        let dst = pos * kv_dim + off;
        let r = rotate(k[src], k[src + 1u], pair, pos);
        k_cache[dst] = r.x;
        k_cache[dst + 1u] = r.y;
        v_cache[dst] = v[src];
        v_cache[dst + 1u] = v[src + 1u];
    }
}
