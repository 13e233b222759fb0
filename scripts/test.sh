#!/usr/bin/env bash
# The test command: ensures a Vulkan driver (installs lavapipe when there is none), then
# runs the whole test suite in release mode (GPU tests run on whatever adapter exists).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-vulkan.sh
exec cargo test --release "$@"
