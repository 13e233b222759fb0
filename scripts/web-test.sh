#!/usr/bin/env bash
# The browser check: builds the page (web/build.sh), serves it on loopback and loads it in
# headless Chromium, whose WebGPU runs on its software adapter (SwiftShader) where there is
# no GPU; fails on any verify mismatch, an error the page's code did not get, a page that
# takes 3 s or more to load, or a wasm binary over 3 MB. Saves screenshots to target/web/. Installs what it needs
# where missing: the wasm32 target, wasm-bindgen-cli (the version web/Cargo.toml pins),
# Debian's chromium, and web/test's npm packages (playwright-core, binaryen's wasm-opt).
#
#   bash scripts/web-test.sh                  # the page, then every format's suite twice
#   bash scripts/web-test.sh --formats=q4_0   # one run, arguments to web/test/browser-test.mjs
#
# A browser that cannot start a WebGPU adapter is reported as SKIPPED (with its reason),
# not passed; with WGQUANT_WEB_OPTIONAL=1 (CI) that, and a machine that cannot install the
# tools, exits 0 after the message. A failing case always fails.
set -euo pipefail
cd "$(dirname "$0")/.."

skip() {
    echo "web-test.sh: SKIPPED, $1" >&2
    if [ "${WGQUANT_WEB_OPTIONAL:-0}" = 1 ]; then exit 0; fi
    exit 2
}

pinned=$(sed -n 's/^wasm-bindgen = "=\(.*\)"/\1/p' web/Cargo.toml)
rustup target list --installed | grep -qx wasm32-unknown-unknown ||
    rustup target add wasm32-unknown-unknown || skip "cannot install the wasm32 target"
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$pinned" ]; then
    cargo install wasm-bindgen-cli --version "$pinned" ||
        skip "cannot install wasm-bindgen-cli $pinned"
fi
if ! command -v chromium >/dev/null; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } ||
        skip "cannot install Debian's chromium"
fi
(cd web/test && npm ci --no-audit --no-fund) || skip "cannot install web/test's npm packages"

bash web/build.sh
# One run of the page; exit statuses as browser-test.mjs's (2: no WebGPU adapter, skipped).
page() {
    local rc=0
    node web/test/browser-test.mjs "$@" || rc=$?
    case $rc in
        0) ;;
        2) skip "the browser started no WebGPU adapter (its reason is printed above)" ;;
        *) echo "web-test.sh: FAILED (browser-test.mjs $*)" >&2; exit "$rc" ;;
    esac
}
if [ $# -gt 0 ]; then
    page "$@"
else
    # The page as a visitor opens it (the issue's five formats, verify and bench), then every
    # format's suite with this adapter's kernels and with a hardware GPU's (buffer GEMV,
    # tiled GEMM), so the shaders a visitor's GPU runs pass the browser's compiler too.
    page --screenshot=target/web/screenshot.png
    page --no-bench --formats=all --screenshot=target/web/all-device.png
    page --no-bench --formats=all --query=kernels=gpu --screenshot=target/web/all-gpu.png
fi
echo "web-test.sh: passed"
