// Shared by every llama op kernel (prepended to each op's file): the per-call uniform.

struct Run {
    // Tokens in this forward call.
    n: u32,
    // Position of the first of them.
    pos0: u32,
}

@group(0) @binding(0) var<uniform> run: Run;
