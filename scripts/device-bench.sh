#!/usr/bin/env bash
# The full benchmark on a lent GPU machine (see the workplace's shared/device/README.md),
# sized to finish within 5 minutes there, printing a short table last.
#
#   scripts/device-bench.sh stage     here: release build, then stage .device/ (binaries,
#                                     Vulkan loader, gpu.sh) and the SmolLM2 GGUF if fetched
#   scripts/device-bench.sh run       on the device (carry .device): writes $OUT/verify.txt,
#                                     $OUT/bench.json, $OUT/bench.txt and $OUT/generate.txt
#
# WGQUANT=path/to/wgquant (no gpu.sh wrapper) runs the same sequence on any machine, e.g.
# WGQUANT=target/release/wgquant SHAPES="--shape 1024x1024" scripts/device-bench.sh run
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
case "$mode" in
stage)
    cargo build --release
    STAGE=${STAGE:-../shared/device/stage.sh}
    [ -f "$STAGE" ] || { echo "no stage script at $STAGE (set STAGE=...)" >&2; exit 1; }
    extra=()
    [ -f target/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf ] &&
        extra+=(target/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf)
    bash "$STAGE" "${extra[@]}"
    ;;
run)
    OUT=${OUT:-$(mktemp -d)}
    if [ -n "${WGQUANT:-}" ]; then
        W=("$WGQUANT")
        MODEL=${MODEL:-target/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf}
    else
        W=(bash .device/gpu.sh .device/wgquant)
        MODEL=${MODEL:-.device/SmolLM2-135M-Instruct.Q4_1.gguf}
    fi
    # The issue's shapes (m x k = 4096 x 14336 and 16384 x 8192, batches 1, 8, 512, with
    # rotating copies past the L2) and the formats with targets; f32 always runs alongside.
    SHAPES=${SHAPES:-"--shape 4096x14336 --shape 16384x8192"}
    FORMATS=${FORMATS:-"q4_0 q4_1 q8_0 int4_g128 int8_g128 q4_k q6_k"}
    fmt_args=()
    for f in $FORMATS; do fmt_args+=(--format "$f"); done
    "${W[@]}" adapters > "$OUT/adapters.txt" 2>&1 || true
    # Correctness first, for the benchmarked formats: every kernel against the f64 reference,
    # GEMM batches included, so the tensor-core GEMM (gemm_coop, which only naga checks on
    # machines without cooperative matrices) is verified wherever the device runs it.
    timeout "${VERIFY_SECONDS:-30}" "${W[@]}" verify --format f32 "${fmt_args[@]}" \
        > "$OUT/verify.txt" 2>&1 || echo "verify FAILED or timed out" >> "$OUT/verify.txt"
    # shellcheck disable=SC2086
    timeout "${BENCH_SECONDS:-210}" "${W[@]}" bench $SHAPES --batch 1 --batch 8 --batch 512 \
        "${fmt_args[@]}" --json > "$OUT/bench.json"
    if [ -f "$MODEL" ]; then
        timeout 60 "${W[@]}" generate --model "$MODEL" --prompt "The capital of France is" \
            -n 64 > "$OUT/generate.txt" 2>&1 || echo "generate failed" >> "$OUT/generate.txt"
    fi
    # The short table: kernel, format, shape, n, microseconds, GB/s, ratio to f32.
    python3 - "$OUT/bench.json" > "$OUT/bench.txt" <<'PY' || cat "$OUT/bench.json"
import json, sys
rows = json.load(open(sys.argv[1]))
print(f"{'kernel':8} {'format':14} {'m':>6} {'k':>6} {'n':>4} {'us':>10} {'GB/s':>8} {'GFLOP/s':>9} {'vs f32':>7}")
for r in rows:
    print(f"{r['kernel']:8} {r['format']:14} {r['m']:>6} {r['k']:>6} {r['n']:>4} "
          f"{r['seconds'] * 1e6:>10.1f} {r['gbps']:>8.1f} {r['gflops']:>9.1f} {r['ratio_to_f32']:>6.2f}x"
          + (" w" if r.get('timing') == 'wall' else ""))
PY
    grep -E "FAIL|passed|gemm_coop" "$OUT/verify.txt" | tail -n 8 || true
    [ -f "$OUT/generate.txt" ] && tail -n 1 "$OUT/generate.txt"
    cat "$OUT/bench.txt" 2>/dev/null || true
    ;;
*)
    echo "usage: scripts/device-bench.sh stage|run" >&2
    exit 2
    ;;
esac
