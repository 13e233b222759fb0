#!/usr/bin/env bash
# Builds examples/bevy (its own crate; Bevy 0.20, wgpu 30). Extra arguments go to cargo
# (e.g. --release). Prints the wall time. Bevy 0.20.1 wants rustc >= 1.97.1: the default
# toolchain when new enough, else an installed nightly with --ignore-rust-version.
set -euo pipefail
cd "$(dirname "$0")/../examples/bevy"
toolchain=()
ver=$(rustc --version | awk '{print $2}')
if [ "$(printf '%s\n' 1.97.1 "$ver" | sort -V | head -1)" != 1.97.1 ]; then
    if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
        toolchain=(+nightly)
        set -- --ignore-rust-version "$@"
        echo "rustc $ver is older than Bevy's 1.97.1: using nightly ($(rustc +nightly --version))"
    else
        echo "warning: rustc $ver is older than Bevy 0.20's rust-version 1.97.1" >&2
    fi
fi
start=$(date +%s)
cargo "${toolchain[@]}" build "$@"
echo "built in $(( $(date +%s) - start )) s"
