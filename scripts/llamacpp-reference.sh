#!/usr/bin/env bash
# Reference numbers from llama.cpp (CPU build) for small GGUF models, to compare with
# `wgquant perplexity`, `generate` and `tokenize` (docs/MODEL.md quotes its output).
#
# Usage:  scripts/llamacpp-reference.sh MODEL.gguf [MODEL2.gguf ...]
#   The first model additionally gets a -c 512 perplexity run.
#
# Source: the PyPI sdist of llama-cpp-python 0.3.36, which vendors llama.cpp
#   (vendor/llama.cpp, ggml-org/llama.cpp@0c1e57098, ggml 0.25.3).
#   sha256 832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
# Everything is done under $WORK (default target/llamacpp; the build takes ~20 min on 2 cores). Heavy commands run
# under `nice -n 15`; all inference uses 2 threads where the tool allows it.
# Env: WORK, THREADS (default 2), TEXT (perplexity text, default GPL-3),
#      SKIP_BUILD=1 to reuse an existing build.
set -euo pipefail

WORK=${WORK:-$(cd "$(dirname "$0")/.." && pwd)/target/llamacpp}
# Model paths are used after `cd "$WORK"`: make them absolute first.
models=()
for m in "$@"; do models+=("$(realpath "$m")"); done
set -- "${models[@]}"
THREADS=${THREADS:-2}
TEXT=${TEXT:-/usr/share/common-licenses/GPL-3}
VER=0.3.36
SHA=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
TARBALL=llama_cpp_python-$VER.tar.gz
URL=https://pypi.org/packages/packages/ec/e9/e7de2b0463ea3ffbf0ede6cb21b58c1258a8f6521aae45ca773a59fe7cf3/$TARBALL
NICE="nice -n 15"

[ $# -ge 1 ] || { echo "usage: $0 MODEL.gguf [MODEL2.gguf ...]" >&2; exit 2; }
mkdir -p "$WORK"
cd "$WORK"

# ---- 1. source ---------------------------------------------------------------
if [ ! -f "$TARBALL" ]; then
    # URL from https://pypi.org/pypi/llama-cpp-python/json (urls[].packagetype == sdist)
    curl -fsSL -o "$TARBALL" "$URL" || python3 - "$VER" "$TARBALL" <<'EOF'
import json, sys, urllib.request, urllib.parse
ver, out = sys.argv[1], sys.argv[2]
d = json.load(urllib.request.urlopen(f"https://pypi.org/pypi/llama-cpp-python/{ver}/json"))
u = [x["url"] for x in d["urls"] if x["packagetype"] == "sdist"][0]
urllib.request.urlretrieve(urllib.parse.urljoin("https://pypi.org/pypi/llama-cpp-python/json", u), out)
EOF
fi
echo "$SHA  $TARBALL" | sha256sum -c -
SRC=$WORK/llama_cpp_python-$VER/vendor/llama.cpp
[ -d "$SRC" ] || $NICE tar xzf "$TARBALL"

# ---- 2. build (CPU only) -------------------------------------------------------
command -v cmake >/dev/null || pip install cmake
B=$WORK/build/bin
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    $NICE cmake -S "$SRC" -B "$WORK/build" -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
        -DGGML_VULKAN=OFF -DLLAMA_OPENSSL=OFF -DCMAKE_BUILD_TYPE=Release
    # llama-cli in this version links the whole server; llama-completion is
    # the classic CLI (with -t), llama-simple is the minimal greedy example.
    $NICE cmake --build "$WORK/build" -j2 --target \
        llama-perplexity llama-tokenize llama-simple llama-bench llama-completion
fi
echo "== version"
"$B/llama-completion" --version 2>&1 | grep -E "version|built" || true

# ---- 3/4. runs ---------------------------------------------------------------
first=1
for M in "$@"; do
    name=$(basename "$M" .gguf)
    echo; echo "################ $M"

    echo "== perplexity -c 256 --chunks 4 -b 256"
    $NICE "$B/llama-perplexity" -m "$M" -f "$TEXT" -c 256 --chunks 4 -b 256 -t "$THREADS" \
        > "$WORK/ppl-$name-c256.log" 2>&1
    grep -E "tokenizing the input|tokenization took|calculating perplexity|^\[1\]|Final estimate" "$WORK/ppl-$name-c256.log"
    if [ $first = 1 ]; then
        echo "== perplexity -c 512 --chunks 4"
        $NICE "$B/llama-perplexity" -m "$M" -f "$TEXT" -c 512 --chunks 4 -t "$THREADS" \
            > "$WORK/ppl-$name-c512.log" 2>&1
        grep -E "tokenizing the input|tokenization took|calculating perplexity|^\[1\]|Final estimate" "$WORK/ppl-$name-c512.log"
    fi

    for P in "The capital of France is" "Once upon a time,"; do
        echo "== llama-simple -n 32 \"$P\" (greedy; default 4 threads, not settable)"
        $NICE "$B/llama-simple" -m "$M" -n 32 "$P" 2> "$WORK/simple-$name.err" \
            | tee "$WORK/simple-$name-$(echo "$P" | tr -cd 'a-zA-Z').txt"
        grep -E "decoded|eval time" "$WORK/simple-$name.err" || true
        echo "== llama-completion greedy (--top-k 1 --temp 0) -n 32 -t $THREADS"
        $NICE "$B/llama-completion" -m "$M" -p "$P" -n 32 -t "$THREADS" --temp 0 --top-k 1 \
            -no-cnv --no-warmup -c 512 2> "$WORK/compl-$name.err" \
            < /dev/null | tee "$WORK/compl-$name-$(echo "$P" | tr -cd 'a-zA-Z').txt"
        echo
        grep -E "eval time" "$WORK/compl-$name.err" || true
    done

    echo "== token count of the perplexity text (perplexity strips one trailing newline, no BOS, no special parsing)"
    head -c -1 "$TEXT" | "$B/llama-tokenize" -m "$M" --stdin --no-parse-special --show-count --ids --log-disable 2>/dev/null | tail -n 1
    echo "== tokenize"
    "$B/llama-tokenize" -m "$M" -p "The capital of France is Paris" --ids --log-disable 2>/dev/null
    "$B/llama-tokenize" -m "$M" -p $'<|im_start|>user\nHi<|im_end|>\n' --ids --log-disable 2>/dev/null
    "$B/llama-tokenize" -m "$M" -p "The capital of France is" --ids --log-disable 2>/dev/null
    "$B/llama-tokenize" -m "$M" -p "Once upon a time," --ids --log-disable 2>/dev/null
    echo "== tokenize (no special parsing)"
    "$B/llama-tokenize" -m "$M" -p $'<|im_start|>user\nHi<|im_end|>\n' --ids --no-parse-special --log-disable 2>/dev/null || true

    echo "== llama-bench -t $THREADS (pp64, tg32)"
    $NICE "$B/llama-bench" -m "$M" -t "$THREADS" -p 64 -n 32 -r 3 2>/dev/null
    first=0
done
