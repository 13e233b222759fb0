#!/usr/bin/env bash
# End-to-end check of the file commands against the reference Python tools:
# make a safetensors file, `wgquant quantize` it to every format, check each GGUF with the
# `gguf` package (blocks byte-identical to its quantizer), `dequantize` it, and check
# `wgquant matmul` (GEMV and GEMM) against a float64 NumPy matmul; where SmolLM2 is present,
# a calibrated (AWQ) and a mixed-precision model read back by gguf-py tensor for tensor.
# Needs python3 with numpy and gguf (installed into a venv under target/ if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
WGQUANT=${WGQUANT:-target/release/wgquant}
[ -x "$WGQUANT" ] || cargo build --release --quiet
PY=python3
if ! $PY -c "import numpy, gguf" 2>/dev/null; then
    VENV=target/e2e-venv
    if ! { [ -x $VENV/bin/python ] || python3 -m venv $VENV; } ||
        ! $VENV/bin/pip install --quiet numpy gguf; then
        echo "e2e: skipped, numpy and gguf could not be installed" >&2
        exit 0
    fi
    PY=$VENV/bin/python
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
$PY - "$WORK" <<'PYEOF'
import json, struct, sys
import numpy as np
work = sys.argv[1]
rng = np.random.default_rng(0)
tensors = {
    "layer.weight": rng.standard_normal((96, 256)).astype(np.float32),
    "layer.wide": (rng.standard_normal((40, 384)) * 0.02).astype(np.float16),
    "layer.bias": rng.standard_normal(96).astype(np.float32),
    "odd.weight": rng.standard_normal((8, 100)).astype(np.float32),
}
header, blobs, off = {}, [], 0
for name, a in tensors.items():
    b = a.tobytes()
    header[name] = {"dtype": {"float32": "F32", "float16": "F16"}[str(a.dtype)],
                    "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
    blobs.append(b); off += len(b)
h = json.dumps(header).encode()
h += b" " * (-len(h) % 8)
with open(f"{work}/model.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
np.save(f"{work}/x1.npy", rng.standard_normal((1, 256)).astype(np.float32))
np.save(f"{work}/x5.npy", rng.standard_normal((5, 256)).astype(np.float32))
np.save(f"{work}/x20.npy", rng.standard_normal((20, 256)).astype(np.float32))
PYEOF
for fmt in q8_0 q4_0 q4_1 q5_0 q5_1 q2_k q4_k q5_k q6_k iq4_nl mxfp4 tq1_0 tq2_0 nf4 b1_g64 \
    int8_g32 int4_g128 int4_g64_asym; do
    echo "== $fmt"
    $WGQUANT quantize "$WORK/model.safetensors" "$WORK/$fmt.gguf" --format $fmt
    $PY scripts/check_gguf.py "$WORK/$fmt.gguf" "$WORK/model.safetensors"
    $WGQUANT dequantize "$WORK/$fmt.gguf" "$WORK/$fmt.dq.safetensors"
    for n in 1 5 20; do
        $WGQUANT matmul --weights "$WORK/$fmt.gguf" --tensor layer.weight \
            --input "$WORK/x$n.npy" --output "$WORK/y.npy"
        $PY scripts/check_matmul.py "$WORK/$fmt.gguf" layer.weight "$WORK/x$n.npy" "$WORK/y.npy"
    done
done
# A whole model calibrated and AWQ-folded reads in the reference package: every tensor
# there, each quantized one dequantized by gguf-py equal to wgquant's own dequantization.
SMOL=target/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
if [ -f "$SMOL" ]; then
    echo "== SmolLM2: awq, and mixed precision under a size budget"
    $WGQUANT quantize "$SMOL" "$WORK/smol-awq.gguf" -f q4_0 -m awq \
        --calib-text /usr/share/common-licenses/Apache-2.0 --calib-tokens 512 --calib-ctx 256
    # RTN over four candidates keeps the planning step short (44 s here, 300 s with imatrix
    # over the default set); the point is a file of mixed block types.
    $WGQUANT quantize "$SMOL" "$WORK/smol-mixed.gguf" --target-bpw 4.8 -f q4_0 -m rtn \
        --candidates q4_0,q4_k,q6_k,q8_0 \
        --calib-text /usr/share/common-licenses/Apache-2.0 --calib-tokens 256 --calib-ctx 128
    for f in smol-awq smol-mixed; do
        $WGQUANT dequantize "$WORK/$f.gguf" "$WORK/$f.safetensors"
        $PY - "$WORK/$f.gguf" "$WORK/$f.safetensors" <<'PYEOF'
import json, struct, sys
import numpy as np
import gguf
path, st = sys.argv[1], sys.argv[2]
r = gguf.GGUFReader(path)
with open(st, "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(n))
    base = 8 + n
    raw = open(st, "rb").read()
def ours(name):
    h = header[name]
    a, b = h["data_offsets"]
    return np.frombuffer(raw[base + a:base + b], dtype=np.float32).reshape(h["shape"])
types = set()
for t in r.tensors:
    ty = gguf.GGMLQuantizationType(t.tensor_type)
    types.add(ty.name)
    got = gguf.quants.dequantize(t.data, ty).reshape(ours(t.name).shape)
    assert np.array_equal(got.astype(np.float32), ours(t.name)), t.name
assert len(r.tensors) == len(header) - ("__metadata__" in header), (len(r.tensors), len(header))
print(f"{path}: {len(r.tensors)} tensors read by gguf-py, types {sorted(types)}, all equal")
PYEOF
    done
fi
echo "e2e: all checks passed"
