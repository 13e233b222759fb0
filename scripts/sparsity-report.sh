#!/usr/bin/env bash
# The pruning table of docs/MODEL.md: SmolLM2-135M (the Q4_1 GGUF of
# scripts/fetch-smollm2.sh) pruned (2:4, 4:8, 50%) by magnitude, Wanda and SparseGPT and
# quantized, calibrated on one text (the same 16k tokens as scripts/calibration-report.sh)
# and scored on another (GPL-3, perplexity at ctx 512 over all 14 chunks, on the CPU).
#
#   scripts/sparsity-report.sh [OUT_DIR]
#
# Prints one markdown row per file (bits per weight over all tensors, size, PPL, the ratio
# to the dense q4_0 RTN file of the same run, time to quantize). About 30 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-target/sparsity-report}
# shellcheck source=scripts/smollm2-eval.sh
source scripts/smollm2-eval.sh
ROWS=$OUT/rows.md

BASE=""
run() { # label format args...
    local label=$1 fmt=$2
    shift 2
    local file=$OUT/$(echo "$label" | tr ' :%/+' '_____').gguf
    local t0 t bpw mb p e
    t0=$(date +%s.%N)
    "$W" quantize "$SRC" "$file" -f "$fmt" "$@" >"$file.log" 2>&1
    t=$(python3 -c "print(f'{$(date +%s.%N)-$t0:.0f}')")
    bpw=$(sed -n 's/.* \([0-9.]*\) bits per weight over all tensors.*/\1/p' "$file.log" | tail -1)
    mb=$(python3 -c "print(f'{$(stat -c %s "$file")/1e6:.1f}')")
    read -r p e < <(ppl "$file")
    [ -n "$BASE" ] || BASE=$p
    local r
    r=$(python3 -c "print(f'{$p/$BASE:.2f}x')")
    echo "| $label | $fmt | ${bpw:-32} | $mb | $p +/- $e | $r | $t |" | tee -a "$ROWS"
    rm -f "$file"
}

echo "| pruning + method | format | bits/weight | MB | PPL (GPL-3, ctx 512) | vs dense q4_0 rtn | quantize s |" | tee "$ROWS"
echo "|---|---|---|---|---|---|---|" | tee -a "$ROWS"
run "dense, rtn" q4_0 -m rtn
run "dense, rtn " int4_g64 -m rtn
run "dense, gptq" int4_g64 -m gptq "${CALIB[@]}"
run "2:4 magnitude, rtn" int4_g64_2of4 -m rtn
run "2:4 wanda, rtn" int4_g64_2of4 -m rtn --prune 2:4 --prune-method wanda "${CALIB[@]}"
run "2:4 magnitude, gptq" int4_g64_2of4 -m gptq --prune 2:4 --prune-method magnitude "${CALIB[@]}"
run "2:4 sparsegpt + gptq" int4_g64_2of4 -m gptq --prune 2:4 --prune-method sparsegpt "${CALIB[@]}"
run "2:4 sparsegpt, no quantization" f32 --prune 2:4 --prune-method sparsegpt "${CALIB[@]}"
run "4:8 sparsegpt + gptq" q4_0 -m gptq --prune 4:8 --prune-method sparsegpt "${CALIB[@]}"
run "50% sparsegpt + gptq" q4_0 -m gptq --prune 50% --prune-method sparsegpt "${CALIB[@]}"
