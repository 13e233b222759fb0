#!/usr/bin/env bash
# The calibration table of docs/MODEL.md: SmolLM2-135M (the Q4_1 GGUF of
# scripts/fetch-smollm2.sh) quantized by every method on one text and scored on another.
#
#   scripts/calibration-report.sh [OUT_DIR] [FORMAT...]
#   (environment: METHODS="rtn mse imatrix awq gptq gptq-act-order", TARGETS="4.8",
#    TARGET_METHODS="imatrix gptq-act-order"; empty TARGETS skips the mixed rows)
#
# Calibration text: the Debian license texts that are not GNU licenses' own (Apache-2.0,
# MPL-1.1, MPL-2.0, Artistic, CC0-1.0, BSD) plus GFDL-1.3, 16384 tokens in sequences of 512.
# Held-out text: GPL-3, perplexity at ctx 512 over all 14 chunks (llama-perplexity's method,
# on the CPU: `wgquant perplexity --cpu` gives the GPU path's numbers, several times faster
# than lavapipe). Every file in /usr/share/common-licenses comes with Debian's base-files.
#
# Prints one markdown row per file: format, method, bits per weight (all tensors), MB,
# PPL +/- its uncertainty, the increase over the source, and the time to quantize. Rows are
# appended to OUT_DIR/rows.md as they finish, so an interrupted run keeps them.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-target/calibration-report}
shift || true
FORMATS=("$@")
[ ${#FORMATS[@]} -gt 0 ] || FORMATS=(q4_0 int4_g32_asym iq4_nl q5_0)
METHODS=${METHODS-"rtn imatrix awq gptq gptq-act-order"}
TARGETS=${TARGETS-"4.8"}
# shellcheck source=scripts/smollm2-eval.sh
source scripts/smollm2-eval.sh
ROWS=$OUT/rows.md

read -r SRC_PPL SRC_ERR < <(ppl "$SRC")
row() { # file format method seconds
    local bpw mb p e
    bpw=$(sed -n 's/.* \([0-9.]*\) bits per weight over all tensors.*/\1/p' "$1.log" | tail -1)
    mb=$(python3 -c "print(f'{$(stat -c %s "$1")/1e6:.1f}')")
    read -r p e < <(ppl "$1")
    local up
    up=$(python3 -c "print(f'{100*($p/$SRC_PPL-1):+.1f}%')")
    echo "| $2 | $3 | $bpw | $mb | $p +/- $e | $up | $4 |" | tee -a "$ROWS"
}

echo "| format | method | bits/weight | MB | PPL (GPL-3, ctx 512) | vs source | quantize s |" | tee "$ROWS"
echo "|---|---|---|---|---|---|---|" | tee -a "$ROWS"
echo "| q4_1 (source) | - | - | $(python3 -c "print(f'{$(stat -c %s "$SRC")/1e6:.1f}')") | $SRC_PPL +/- $SRC_ERR | - | - |" | tee -a "$ROWS"
for fmt in "${FORMATS[@]}"; do
    for m in $METHODS; do
        file=$OUT/$fmt-$m.gguf
        case $m in
            rtn | mse) args=(-m "$m") ;;
            gptq-act-order) args=(-m gptq --act-order "${CALIB[@]}") ;;
            *) args=(-m "$m" "${CALIB[@]}") ;;
        esac
        t0=$(date +%s.%N)
        "$W" quantize "$SRC" "$file" -f "$fmt" "${args[@]}" >"$file.log" 2>&1
        t=$(python3 -c "print(f'{$(date +%s.%N)-$t0:.0f}')")
        row "$file" "$fmt" "$m" "$t"
        rm -f "$file"
    done
done
for b in $TARGETS; do
    for m in ${TARGET_METHODS:-imatrix gptq-act-order}; do
        file=$OUT/mixed-$b-$m.gguf
        case $m in
            gptq-act-order) args=(-m gptq --act-order) ;;
            *) args=(-m "$m") ;;
        esac
        t0=$(date +%s.%N)
        "$W" quantize "$SRC" "$file" -f q4_0 --target-bpw "$b" "${args[@]}" "${CALIB[@]}" \
            >"$file.log" 2>&1
        t=$(python3 -c "print(f'{$(date +%s.%N)-$t0:.0f}')")
        row "$file" "mixed $b" "$m" "$t"
        rm -f "$file"
    done
done
