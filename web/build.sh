#!/usr/bin/env bash
# Build the browser page into web/dist: the wasm module (cargo for wasm32, wasm-bindgen,
# wasm-opt) beside the page's files. `web/build.sh --serve [PORT]` then serves it on
# http://127.0.0.1:PORT/ (default 8000).
# Needs: rustup target add wasm32-unknown-unknown; cargo install wasm-bindgen-cli --version
# 0.2.130 (the version web/Cargo.toml pins); binaryen's wasm-opt from npm (cd web/test && npm ci:
# Debian 12's binaryen 108 writes modules that browsers reject).
set -euo pipefail
web="$(cd "$(dirname "$0")" && pwd)"
target="$web/../target/wasm"
dist="$web/dist"

need() {
  command -v "$1" >/dev/null || { echo "web/build.sh: $1 not found; $2" >&2; exit 1; }
}
need wasm-bindgen "install it with: cargo install wasm-bindgen-cli --version 0.2.130"
wasm_opt="$web/test/node_modules/.bin/wasm-opt"
[ -x "$wasm_opt" ] || { echo "web/build.sh: $wasm_opt not found; run: (cd web/test && npm ci)" >&2; exit 1; }
rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown ||
  { echo "web/build.sh: run rustup target add wasm32-unknown-unknown" >&2; exit 1; }
pinned=$(sed -n 's/^wasm-bindgen = "=\(.*\)"/\1/p' "$web/Cargo.toml")
have=$(wasm-bindgen --version | awk '{print $2}')
[ "$have" = "$pinned" ] || {
  echo "web/build.sh: wasm-bindgen $have, but web/Cargo.toml pins $pinned (cargo install wasm-bindgen-cli --version $pinned)" >&2
  exit 1
}

(cd "$web" && cargo build --release --target wasm32-unknown-unknown --target-dir "$target")
rm -rf "$dist" && mkdir -p "$dist"
wasm-bindgen --target web --no-typescript --out-dir "$dist" \
  "$target/wasm32-unknown-unknown/release/wgquant_web.wasm"
# The features rustc emits for wasm32 by default.
"$wasm_opt" -Oz --enable-bulk-memory --enable-sign-ext --enable-mutable-globals \
  --enable-nontrapping-float-to-int --enable-reference-types --enable-multivalue "$dist/wgquant_web_bg.wasm" -o "$dist/wgquant_web_bg.wasm"
cp "$web/index.html" "$web/main.js" "$dist/"
[ -f "$web/style.css" ] && cp "$web/style.css" "$dist/"
echo "web/dist: $(du -b "$dist/wgquant_web_bg.wasm" | cut -f1) bytes of wasm"

if [ "${1:-}" = "--serve" ]; then
  port="${2:-8000}"
  echo "serving http://127.0.0.1:$port/ (Ctrl-C stops)"
  exec python3 -m http.server "$port" --bind 127.0.0.1 --directory "$dist"
fi
