#!/usr/bin/env python3
"""Check `wgquant matmul` against a float64 NumPy matmul over the dequantized weights.

Usage:
    pip install gguf numpy
    wgquant matmul --weights W.gguf --tensor NAME --input X.npy --output Y.npy
    python scripts/check_matmul.py W.gguf NAME X.npy Y.npy

The weights are dequantized independently of wgquant: GGUF types with the reference `gguf`
package (gguf.quants.dequantize), wgquant's int planes (NAME.codes / .scales / .zeros and
the metadata key wgquant.format.NAME) by their documented rule w = s * (q - z), and the
block-stored formats (NAME.blocks: nf4, b1_gG) by the layouts in their module docs.
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
    if fmt == "nf4" or fmt.startswith("b1_g"):
        return block_format_weight(tensors[f"{name}.blocks"], fmt)
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


NF4_CODES = np.array([-1.0, -0.6961928, -0.5250731, -0.3949175, -0.2844414, -0.1847734,
                      -0.0910500, 0.0, 0.0795803, 0.1609302, 0.2461123, 0.3379152, 0.4407098,
                      0.5626170, 0.7229568, 1.0], dtype=np.float32)


def block_format_weight(t, fmt: str) -> np.ndarray:
    """nf4: per 64 weights an f32 absmax then 32 bytes, first weight in the high nibble;
    b1_gG: per G weights an f16 scale then G/8 bytes of sign bits, LSB first, 1 = +s."""
    raw = np.asarray(t.data).view(np.uint8)
    rows = int(t.shape[1])
    raw = raw.reshape(rows, -1)
    if fmt == "nf4":
        blocks = raw.reshape(rows, -1, 36)
        absmax = blocks[:, :, :4].copy().view(np.float32)  # [rows, nb, 1]
        qs = blocks[:, :, 4:]
        q = np.stack([qs >> 4, qs & 15], axis=-1).reshape(rows, qs.shape[1], 64)
        return (NF4_CODES[q] * absmax).reshape(rows, -1)
    group = int(fmt[len("b1_g"):])
    blocks = raw.reshape(rows, -1, 2 + group // 8)
    scale = blocks[:, :, :2].copy().view(np.float16).astype(np.float32)  # [rows, nb, 1]
    bits = np.unpackbits(blocks[:, :, 2:], axis=-1, bitorder="little")
    return (np.where(bits == 1, 1.0, -1.0).astype(np.float32) * scale).reshape(rows, -1)


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
