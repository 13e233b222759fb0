#!/usr/bin/env bash
# The numbers of docs/MODEL.md: SmolLM2-135M-Instruct requantized from its Q4_1 GGUF to each
# format, then per format: file size, perplexity (llama-perplexity's method) on a text,
# generation speed, and the greedy continuation of two prompts.
#   scripts/model-report.sh                 # every format below, on the default adapter
#   FORMATS="q8_0 q4_0" CTX=512 CHUNKS=8 scripts/model-report.sh
# Writes target/smollm2/report/<format>.txt and prints one markdown table row per format.
set -euo pipefail
cd "$(dirname "$0")/.."
FORMATS=${FORMATS:-"q8_0 q4_1 q5_0 q4_0 iq4_nl mxfp4 int4_g64 int4_g32_asym"}
CTX=${CTX:-256}
CHUNKS=${CHUNKS:-4}
TEXT=${TEXT:-/usr/share/common-licenses/GPL-3}
N=${N:-32}
PROMPT1="The capital of France is"
PROMPT2="Give three tips for a good night's sleep."
bash scripts/fetch-smollm2.sh >&2
cargo build --release --quiet
W=target/release/wgquant
SRC=target/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
OUT=target/smollm2/report
mkdir -p "$OUT" target/smollm2/q
echo "| format | file MB | PPL (ctx $CTX, $CHUNKS chunks) | generation tokens/s | prompt tokens/s |"
echo "|---|---|---|---|---|"
for f in $FORMATS; do
    if [ "$f" = q4_1 ]; then
        M=$SRC
    else
        M=target/smollm2/q/$f.gguf
        "$W" quantize --format "$f" "$SRC" "$M" > "$OUT/$f.quantize.log" 2>&1
    fi
    MB=$(awk -v b="$(stat -c %s "$M")" 'BEGIN { printf "%.1f", b / 1e6 }')
    "$W" perplexity --model "$M" --text "$TEXT" --ctx "$CTX" --chunks "$CHUNKS" \
        > "$OUT/$f.ppl" 2> "$OUT/$f.ppl.log"
    PPL=$(sed -n 's/^Final estimate: PPL = //p' "$OUT/$f.ppl")
    "$W" generate --model "$M" --prompt "$PROMPT1" -n "$N" > "$OUT/$f.gen1" 2> "$OUT/$f.gen1.log"
    "$W" generate --model "$M" --prompt "$PROMPT2" --chat -n "$N" \
        > "$OUT/$f.gen2" 2> "$OUT/$f.gen2.log"
    GEN=$(sed -n 's/.*generation: .*(\([0-9.]*\) tokens\/s).*/\1/p' "$OUT/$f.gen1.log")
    PRO=$(sed -n 's/^prompt: .*(\([0-9.]*\) tokens\/s); .*/\1/p' "$OUT/$f.gen2.log")
    {
        echo "== $f ($M, $MB MB)"
        cat "$OUT/$f.ppl"
        echo "-- raw prompt:"
        cat "$OUT/$f.gen1"
        echo "-- chat prompt ($PROMPT2):"
        cat "$OUT/$f.gen2"
    } > "$OUT/$f.txt"
    echo "| $f | $MB | $PPL | $GEN | $PRO |"
done
