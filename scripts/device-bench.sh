#!/usr/bin/env bash
# The full benchmark on a lent GPU machine (see the workplace's shared/device/README.md),
# sized to finish within 5 minutes there, printing a short table last.
#
#   scripts/device-bench.sh stage     here: release build of the binary and the GPU test
#                                     binaries, then stage .device/ (binaries, Vulkan loader,
#                                     gpu.sh, tests.tar.xz)
#   scripts/device-bench.sh run       on the device (carry .device): writes into $OUT
#       verify.txt    adapters, then `wgquant verify` of every benchmarked format
#       tune.txt      `wgquant tune` (GEMV rows per lane group), cached apart from the defaults
#       bench.jsonl   one JSON row per measurement (GEMV n = 1, 8 at both shapes; GEMM n = 512),
#                     untuned defaults
#       widesg.jsonl  GEMV n = 8 with a lane group per subgroup (--gemv-wide subgroup), to
#                     compare with the default 64-lane lane groups reduced in workgroup memory
#       steps1.jsonl  GEMV n = 8 with x read contiguously across a subgroup (--gemv-steps 1:
#                     a lane per 4 values of a chunk), to compare with the default 4 steps
#                     (at n = 1 fewer steps were slower: GPU_GEMV_STEPS's doc)
#       fma.jsonl     GEMM n = 512 without the cooperative-matrix feature: the FMA GEMM that
#                     devices without tensor cores run
#       coopwide.jsonl  GEMM n = 512 on the tensor-core GEMM's wide batch tile
#                     (--coop-wide-tile), to compare with bench.jsonl's default tile
#       tuned.jsonl   GEMV rows with the tuner's choice
#       bench.log     the bench runs' stderr
#       tests.txt     the GPU test binaries (kernels, f16, variants, int8, fake-quant, tuning)
#       summary.txt   each step's exit status and seconds, then the table
#
# Each step has its own time limit inside an overall budget (BUDGET seconds, default 300), so
# a hang or crash in one step still returns the others' results. SKIP="gemm tuned ..." leaves
# out the steps named.
# WGQUANT=path/to/wgquant (no gpu.sh wrapper) runs the same sequence on any machine, e.g.
# WGQUANT=target/release/wgquant SHAPES="--shape 1024x1024" BIG_N=64 scripts/device-bench.sh run
set -uo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
# The GPU test binaries staged for the device (tests/<name>.rs).
GPU_TESTS="kernels_variants tune kernels_f16 int8_activations fake_quant gpu_kernels"
case "$mode" in
stage)
    set -e
    cargo build --release
    STAGE=${STAGE:-../shared/device/stage.sh}
    [ -f "$STAGE" ] || { echo "no stage script at $STAGE (set STAGE=...)" >&2; exit 1; }
    bash "$STAGE"
    # The test binaries, stripped and compressed (the working tree that travels is limited).
    tmp=$(mktemp -d)
    cargo test --release --no-run
    cargo test --release --no-run --message-format=json 2>/dev/null | python3 -c '
import json, shutil, sys
want = set(sys.argv[2].split())
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    t = m.get("target", {})
    if m.get("reason") == "compiler-artifact" and m.get("executable") and t.get("kind") == ["test"] and t["name"] in want:
        shutil.copy(m["executable"], sys.argv[1] + "/" + t["name"])
' "$tmp" "$GPU_TESTS"
    [ "$(ls "$tmp" | wc -l)" -eq "$(echo $GPU_TESTS | wc -w)" ] ||
        { echo "missing test binaries: got $(ls "$tmp")" >&2; exit 1; }
    strip "$tmp"/*
    tar cJf .device/tests.tar.xz -C "$tmp" .
    rm -rf "$tmp"
    du -sh .device
    ;;
run)
    OUT=${OUT:-$(mktemp -d)}
    BUDGET=${BUDGET:-300}
    if [ -n "${WGQUANT:-}" ]; then
        W=("$WGQUANT")
        G=()
    else
        W=(bash .device/gpu.sh .device/wgquant)
        G=(bash .device/gpu.sh)
    fi
    # The issue's shapes (m x k = 4096 x 14336 and 16384 x 8192, with rotating copies past
    # the L2) and the formats with targets; f32 always runs alongside.
    SHAPES=${SHAPES:-"--shape 4096x14336 --shape 16384x8192"}
    GEMM_SHAPE=${GEMM_SHAPE:-"--shape 4096x14336"}
    BIG_N=${BIG_N:-512}
    FORMATS=${FORMATS:-"q4_0 q4_1 q8_0 int4_g128 int8_g128 q4_k q6_k"}
    fmt_args=()
    for f in $FORMATS; do fmt_args+=(--format "$f"); done
    start=$SECONDS
    # step NAME LIMIT OUTFILE CMD...: run CMD with at most LIMIT seconds (less if the budget
    # is nearly spent), appending its stdout to OUTFILE and its stderr to bench.log.
    step() {
        local name=$1 limit=$2 out=$3 left t0 rc
        shift 3
        left=$((BUDGET - (SECONDS - start)))
        if [[ " ${SKIP:-} " == *" $name "* ]]; then
            echo "$name: skipped (SKIP)" >> "$OUT/summary.txt"
            return
        fi
        if [ "$left" -lt 10 ]; then
            echo "$name: skipped (budget spent)" >> "$OUT/summary.txt"
            return
        fi
        [ "$limit" -gt "$left" ] && limit=$left
        t0=$SECONDS
        echo "== $name" >> "$OUT/bench.log"
        timeout "$limit" "$@" >> "$out" 2>> "$OUT/bench.log"
        rc=$?
        echo "$name: exit $rc, $((SECONDS - t0)) s" >> "$OUT/summary.txt"
    }
    : > "$OUT/summary.txt"
    # The defaults run without a tuning cache; the tuner writes to its own.
    export WGQUANT_CACHE_DIR=/tmp/wgquant-untuned
    TUNED=/tmp/wgquant-tuned
    step adapters 20 "$OUT/verify.txt" "${W[@]}" adapters
    # Correctness first, for the benchmarked formats: every kernel against the f64 reference,
    # GEMM batches included, so the tensor-core GEMM (gemm_coop, which only naga checks on
    # machines without cooperative matrices) is verified wherever the device runs it.
    step verify 45 "$OUT/verify.txt" "${W[@]}" verify --format f32 "${fmt_args[@]}"
    step tune 40 "$OUT/tune.txt" env WGQUANT_CACHE_DIR=$TUNED "${W[@]}" tune
    # shellcheck disable=SC2086
    step gemv 110 "$OUT/bench.jsonl" "${W[@]}" bench $SHAPES --batch 1 --batch 8 \
        "${fmt_args[@]}" --jsonl
    # shellcheck disable=SC2086
    step gemm 60 "$OUT/bench.jsonl" "${W[@]}" bench $GEMM_SHAPE --batch "$BIG_N" \
        --iterations 10 "${fmt_args[@]}" --jsonl
    # shellcheck disable=SC2086
    step widesg 40 "$OUT/widesg.jsonl" "${W[@]}" bench $SHAPES --batch 8 \
        --format q4_0 --format q8_0 --format q4_k --gemv-wide subgroup --jsonl
    # shellcheck disable=SC2086
    step steps1 40 "$OUT/steps1.jsonl" "${W[@]}" bench $SHAPES --batch 8 \
        --format q4_0 --format q8_0 --gemv-steps 1 --jsonl
    # The GPU tests before the extra experiments: correctness outranks them.
    if [ -f .device/tests.tar.xz ]; then
        mkdir -p /tmp/wgquant-tests && tar xJf .device/tests.tar.xz -C /tmp/wgquant-tests
        for t in $GPU_TESTS; do
            echo "== $t" >> "$OUT/tests.txt"
            step "test $t" 90 "$OUT/tests.txt" "${G[@]}" /tmp/wgquant-tests/"$t"
        done
        grep -E "^test result|^== |FAILED|panicked" "$OUT/tests.txt" >> "$OUT/summary.txt"
    fi
    # Without the cooperative-matrix feature: the FMA GEMM, what devices without tensor cores
    # run (H200 before its slices were skewed for bank conflicts: 15.4-16.0 TFLOP/s).
    # shellcheck disable=SC2086
    step fma 60 "$OUT/fma.jsonl" env WGQUANT_DISABLE=coop_matrix "${W[@]}" bench \
        $GEMM_SHAPE --batch "$BIG_N" --iterations 10 --format q4_0 --format q8_0 --jsonl
    # The tensor-core GEMM's wide batch tile (128 columns per workgroup, not 64).
    # shellcheck disable=SC2086
    step coopwide 40 "$OUT/coopwide.jsonl" "${W[@]}" bench $GEMM_SHAPE --batch "$BIG_N" \
        --iterations 10 --format q4_0 --format q8_0 --coop-wide-tile --jsonl
    # shellcheck disable=SC2086
    step tuned 40 "$OUT/tuned.jsonl" env WGQUANT_CACHE_DIR=$TUNED "${W[@]}" bench $SHAPES \
        --batch 1 --batch 8 --format q4_0 --format q8_0 --format int4_g128 --jsonl
    # The short table: kernel, format, shape, n, microseconds, GB/s, ratio to f32.
    python3 - "$OUT/bench.jsonl" "$OUT/widesg.jsonl" "$OUT/steps1.jsonl" "$OUT/fma.jsonl" \
        "$OUT/coopwide.jsonl" "$OUT/tuned.jsonl" \
        >> "$OUT/summary.txt" <<'PY'
import json, os, sys
print(f"{'kernel':9} {'format':14} {'m':>6} {'k':>6} {'n':>4} {'us':>9} {'GB/s':>7} {'GFLOP/s':>9} {'vs f32':>7}")
for path in sys.argv[1:]:
    if not os.path.exists(path):
        continue
    if path.endswith("fma.jsonl"):
        print("-- the FMA GEMM (without the cooperative-matrix feature):")
    if path.endswith("widesg.jsonl"):
        print("-- n = 8 on a lane group per subgroup (--gemv-wide subgroup):")
    if path.endswith("steps1.jsonl"):
        print("-- n = 8 with x read contiguously (--gemv-steps 1):")
    if path.endswith("coopwide.jsonl"):
        print("-- the tensor-core GEMM with its wide batch tile (--coop-wide-tile):")
    if path.endswith("tuned.jsonl"):
        print("-- with the tuner's GEMV rows:")
    for line in open(path):
        try:
            r = json.loads(line)
        except ValueError:
            continue
        print(f"{r['kernel']:9} {r['format']:14} {r['m']:>6} {r['k']:>6} {r['n']:>4} "
              f"{r['seconds'] * 1e6:>9.1f} {r['gbps']:>7.0f} {r['gflops']:>9.0f} {r['ratio_to_f32']:>6.2f}x"
              + (" w" if r.get('timing') == 'wall' else ""))
PY
    grep -E "FAIL|passed|error" "$OUT/verify.txt" | tail -n 6 >> "$OUT/summary.txt"
    tail -n 30 "$OUT/tune.txt" >> "$OUT/summary.txt" 2>/dev/null
    cat "$OUT/summary.txt"
    ;;
*)
    echo "usage: scripts/device-bench.sh stage|run" >&2
    exit 2
    ;;
esac
