#!/usr/bin/env python3
"""Check `wgquant matmul` against a float64 NumPy matmul over the dequantized weights.

Usage:
    pip install gguf numpy
    wgquant matmul --weights W.gguf --tensor NAME --input X.npy --output Y.npy
    python scripts/check_matmul.py W.gguf NAME X.npy Y.npy

The weights are dequantized independently of wgquant: GGUF types with the reference `gguf`
package (gguf.quants.dequantize), wgquant's int planes (NAME.codes / .scales / .zeros and
the metadata key wgquant.format.NAME) by their documented rule w = s * (q - z).
Passes when NMSE = sum (y - y_ref)^2 / sum y_ref^2 <= 1e-6 and Y has no NaN. Exit 1 otherwise.
"""

from __future__ import annotations

import re
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T


def field_str(reader: gguf.GGUFReader, key: str) -> str | None:
    f = reader.fields.get(key)
    if f is None:
        return None
    return bytes(f.parts[f.data[0]]).decode()


def dequantized_weight(path: str, name: str) -> np.ndarray:
    r = gguf.GGUFReader(path)
    tensors = {t.name: t for t in r.tensors}
    fmt = field_str(r, f"wgquant.format.{name}")
    if name in tensors:
        t = tensors[name]
        k = int(t.shape[0])
        rows = int(np.prod(t.shape[1:]))
        if t.tensor_type == T.F32:
            return np.asarray(t.data, dtype=np.float32).reshape(rows, k)
        w = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type)
        return np.asarray(w, dtype=np.float32).reshape(rows, k)
    m = re.fullmatch(r"int(4|8)_g(32|64|128)(_asym)?", fmt)
    if not m:
        raise SystemExit(f"unknown wgquant format {fmt!r}")
    bits, group, asym = int(m.group(1)), int(m.group(2)), m.group(3) is not None
    codes = np.asarray(tensors[f"{name}.codes"].data).view(np.uint8)
    scales = np.asarray(tensors[f"{name}.scales"].data).view(np.float16).astype(np.float32)
    rows = scales.shape[0] if scales.ndim == 2 else int(tensors[f"{name}.scales"].shape[1])
    codes = codes.reshape(rows, -1)
    scales = scales.reshape(rows, -1)
    if bits == 4:
        q = np.empty((rows, codes.shape[1] * 2), dtype=np.float32)
        q[:, 0::2] = codes & 15
        q[:, 1::2] = codes >> 4
    else:
        q = codes.astype(np.float32)
    k = q.shape[1]
    if asym:
        z = np.asarray(tensors[f"{name}.zeros"].data).view(np.uint8).reshape(rows, -1).astype(np.float32)
    else:
        z = np.full(scales.shape, 2 ** (bits - 1), dtype=np.float32)
    s = np.repeat(scales, group, axis=1)
    zz = np.repeat(z, group, axis=1)
    return (s * (q - zz)).astype(np.float32).reshape(rows, k)


def main() -> int:
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    path, name, xp, yp = sys.argv[1:]
    w = dequantized_weight(path, name).astype(np.float64)
    x = np.load(xp).astype(np.float64)
    if x.ndim == 1:
        x = x[None, :]
    y = np.load(yp)
    if np.isnan(y).any():
        print("FAIL: output has NaN")
        return 1
    ref = x @ w.T
    if y.shape != ref.shape:
        print(f"FAIL: output shape {y.shape}, expected {ref.shape}")
        return 1
    nmse = float(((y.astype(np.float64) - ref) ** 2).sum() / (ref ** 2).sum())
    ok = nmse <= 1e-6
    print(f"{'ok' if ok else 'FAIL'}: {name} {w.shape[0]}x{w.shape[1]}, n={x.shape[0]}: NMSE {nmse:.3e} (bound 1e-6)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
