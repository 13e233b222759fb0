#!/usr/bin/env bash
# The test command: ensures a Vulkan driver (installs lavapipe when there is none), fetches
# SmolLM2-135M (98 MB, once, into target/smollm2/) for the real-model tests, then runs the
# whole test suite in release mode (GPU tests run on whatever adapter exists).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-vulkan.sh
# With the model present its tests are required; without a network they skip, loudly.
if bash scripts/fetch-smollm2.sh; then
    export WGQUANT_REQUIRE_MODEL=1
else
    echo "WARNING: SmolLM2 could not be fetched; the real-model tests will be skipped" >&2
fi
exec cargo test --release "$@"
