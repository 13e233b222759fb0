#!/usr/bin/env python3
"""Check a GGUF file written by wgquant against the reference `gguf` Python package.

Usage:
    pip install gguf numpy
    python scripts/check_gguf.py MODEL.gguf SOURCE.safetensors
    python scripts/check_gguf.py MODEL.gguf SOURCE.npy [--name TENSOR]

SOURCE is the f32/f16/bf16 file MODEL.gguf was quantized from (a .safetensors file, or a
.npy file holding one tensor; --name says which GGUF tensor it is, default: the only
quantized one). The script

  (a) opens MODEL.gguf with gguf.GGUFReader and lists every tensor (name, type, dims, bytes);
  (b) for every Q8_0 / Q4_0 / Q4_1 tensor, quantizes the source weights with
      gguf.quants.quantize(..., GGMLQuantizationType.X) and requires the bytes to be
      identical to the tensor's data in the file; F32 tensors must equal the source exactly;
  (c) for every wgquant int tensor (metadata `wgquant.format.<name>` = int{4,8}_g{G}[_asym]),
      requires the standard planes `<name>.codes` (I8, dims [k*bits/8, rows]),
      `<name>.scales` (F16, dims [k/G, rows]) and, if asymmetric, `<name>.zeros`
      (I8, dims [k/G, rows]), codes and zero points in range, and the dequantized weights
      s * (q - z) close to the source (NMSE below a loose bound for the bit width).

It also checks that every tensor's data offset is a multiple of the file's alignment.
Exit status: 0 when every check passes, 1 on any mismatch, 2 on bad usage.
No safetensors package is needed: the script reads safetensors headers itself so that
BF16 sources work with plain numpy.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

try:
    import gguf
    from gguf import GGMLQuantizationType as T
except ImportError:  # pragma: no cover
    sys.exit("check_gguf.py needs the reference package: pip install gguf numpy")

FORMAT_PREFIX = "wgquant.format."
# Types the gguf package can quantize: wgquant's blocks must be byte-identical.
QUANT_TYPES = {T.Q8_0: "Q8_0", T.Q4_0: "Q4_0", T.Q4_1: "Q4_1", T.Q5_0: "Q5_0", T.Q5_1: "Q5_1",
               T.TQ1_0: "TQ1_0", T.TQ2_0: "TQ2_0", T.MXFP4: "MXFP4"}
# Types it can only dequantize: the weights must be close to the source (NMSE bound).
DEQUANT_TYPES = {T.Q2_K: 0.15, T.Q4_K: 0.02, T.Q5_K: 0.005, T.Q6_K: 0.002, T.IQ4_NL: 0.02}
# Loose bounds on the NMSE of round-to-nearest group quantization of typical weights.
INT_NMSE_BOUND = {8: 2e-3, 4: 6e-2}


def load_safetensors(path: Path) -> dict[str, np.ndarray]:
    """F32/F16/BF16 tensors of a .safetensors file as float32 (others skipped)."""
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    data = raw[8 + n :]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        buf = data[start:end]
        shape = tuple(info["shape"])
        dtype = info["dtype"]
        if dtype == "F32":
            arr = np.frombuffer(buf, dtype="<f4")
        elif dtype == "F16":
            arr = np.frombuffer(buf, dtype="<f2").astype(np.float32)
        elif dtype == "BF16":
            arr = (np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            print(f"  source: skipping {name} ({dtype})")
            continue
        out[name] = arr.reshape(shape).astype(np.float32)
    return out


def load_source(path: Path, name: str | None) -> dict[str, np.ndarray]:
    if path.suffix == ".npy":
        arr = np.load(path)
        if arr.dtype not in (np.float32, np.float16, np.float64):
            sys.exit(f"{path}: dtype {arr.dtype} is not a float type")
        return {name or "": np.ascontiguousarray(arr).astype(np.float32)}
    return load_safetensors(path)


def field_value(field):
    try:
        return field.contents()
    except AttributeError:  # older gguf: strings only
        return bytes(field.parts[field.data[0]]).decode("utf-8")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("gguf_file", type=Path)
    ap.add_argument("source", type=Path, help=".safetensors or .npy the GGUF was quantized from")
    ap.add_argument("--name", help="GGUF tensor name of a .npy source")
    args = ap.parse_args()

    reader = gguf.GGUFReader(args.gguf_file)
    failures: list[str] = []

    def fail(msg: str) -> None:
        failures.append(msg)
        print(f"  FAIL {msg}")

    tensors = {t.name: t for t in reader.tensors}
    formats = {
        key[len(FORMAT_PREFIX) :]: field_value(f)
        for key, f in reader.fields.items()
        if key.startswith(FORMAT_PREFIX)
    }

    # (a) list
    print(f"{args.gguf_file}: {len(reader.tensors)} tensors, alignment {reader.alignment}")
    for t in reader.tensors:
        fmt = formats.get(t.name, "")
        print(f"  {t.name:<40} {t.tensor_type.name:<5} dims {list(map(int, t.shape))} "
              f"{t.n_bytes} bytes {fmt}")
        if t.data_offset % reader.alignment:
            fail(f"{t.name}: data offset {t.data_offset} not aligned to {reader.alignment}")

    if args.source.suffix == ".npy" and args.name is None:
        quantized = [n for n, t in tensors.items() if t.tensor_type in QUANT_TYPES] + [
            n for n, f in formats.items() if f.startswith("int")
        ]
        if len(quantized) != 1:
            sys.exit("a .npy source needs --name when the GGUF has other than one quantized tensor")
        args.name = quantized[0]
    source = load_source(args.source, args.name)

    planes: set[str] = set()
    n_exact = n_int = n_f32 = 0

    # (c) int tensors
    for base, fmt in formats.items():
        m = re.fullmatch(r"int(4|8)_g(\d+)(_asym)?", fmt)
        if not m:
            continue
        bits, group, asym = int(m[1]), int(m[2]), m[3] is not None
        names = [base + ".codes", base + ".scales"] + ([base + ".zeros"] if asym else [])
        planes.update(names)
        missing = [n for n in names if n not in tensors]
        if missing:
            fail(f"{base} ({fmt}): missing planes {missing}")
            continue
        if not asym and base + ".zeros" in tensors:
            fail(f"{base} ({fmt}): symmetric format has a .zeros plane")
        codes, scales = tensors[base + ".codes"], tensors[base + ".scales"]
        rows = int(codes.shape[1]) if len(codes.shape) == 2 else -1
        k = int(codes.shape[0]) * 8 // bits
        groups = k // group
        want = {base + ".codes": (T.I8, [k * bits // 8, rows]), base + ".scales": (T.F16, [groups, rows])}
        if asym:
            want[base + ".zeros"] = (T.I8, [groups, rows])
        ok = True
        for n, (ty, dims) in want.items():
            t = tensors[n]
            if t.tensor_type != ty or list(map(int, t.shape)) != dims:
                fail(f"{n}: want {ty.name} dims {dims}, got {t.tensor_type.name} dims {list(map(int, t.shape))}")
                ok = False
        if not ok or rows < 0 or k % group:
            continue
        q = codes.data.reshape(rows, -1).view(np.uint8)
        if bits == 4:
            q = np.stack([q & 15, q >> 4], axis=-1).reshape(rows, k)
        s = scales.data.reshape(rows, groups).astype(np.float32)
        if asym:
            z = tensors[base + ".zeros"].data.reshape(rows, groups).view(np.uint8).astype(np.float32)
            if (z > 2**bits - 1).any():
                fail(f"{base}: zero point out of range")
        else:
            z = np.full((rows, groups), 2 ** (bits - 1), np.float32)
            if (q == 0).any():
                fail(f"{base}: symmetric code 0 (never written by the reference quantizer)")
        w = (s[:, :, None] * (q.reshape(rows, groups, group).astype(np.float32) - z[:, :, None])).reshape(rows, k)
        if base not in source:
            fail(f"{base} ({fmt}): planes OK, but the source has no tensor '{base}' to compare")
            continue
        src = source[base].reshape(-1)
        if src.size != rows * k:
            fail(f"{base}: source has {src.size} values, GGUF {rows} x {k}")
            continue
        src = src.reshape(rows, k).astype(np.float64)
        nmse = float(((w - src) ** 2).sum() / max((src**2).sum(), 1e-30))
        if not np.isfinite(nmse) or nmse > INT_NMSE_BOUND[bits]:
            fail(f"{base} ({fmt}): dequantized NMSE {nmse:.3g} exceeds {INT_NMSE_BOUND[bits]}")
        else:
            print(f"  {base}: planes OK ({fmt}), dequantized NMSE {nmse:.3g}")
            n_int += 1

    # (b) GGUF block types and f32
    for name, t in tensors.items():
        if name in planes:
            continue
        if t.tensor_type not in QUANT_TYPES and t.tensor_type not in DEQUANT_TYPES \
                and t.tensor_type != T.F32:
            continue
        if name not in source:
            if t.tensor_type in QUANT_TYPES or t.tensor_type in DEQUANT_TYPES or name in formats:
                fail(f"{name}: quantized, but the source has no tensor '{name}' to compare")
            else:
                print(f"  {name}: not in source, skipped")
            continue
        src = source[name].reshape(-1)
        k = int(t.shape[0])
        rows = int(np.prod(t.shape[1:])) if len(t.shape) > 1 else 1
        if src.size != rows * k:
            fail(f"{name}: source has {src.size} values, GGUF dims {list(map(int, t.shape))}")
            continue
        if t.tensor_type == T.F32:
            got = np.asarray(t.data, dtype=np.float32).reshape(-1)
            if not np.array_equal(got.view(np.uint32), src.view(np.uint32)):
                fail(f"{name}: F32 data differs from the source ({int((got != src).sum())} values)")
            else:
                n_f32 += 1
            continue
        if t.tensor_type in DEQUANT_TYPES:
            w = np.asarray(gguf.quants.dequantize(np.asarray(t.data), t.tensor_type),
                           dtype=np.float64).reshape(-1)
            s64 = src.astype(np.float64)
            nmse = float(((w - s64) ** 2).sum() / max((s64 ** 2).sum(), 1e-300))
            bound = DEQUANT_TYPES[t.tensor_type]
            if nmse <= bound:
                print(f"  {name}: {t.tensor_type.name} dequantized by gguf.quants, NMSE {nmse:.3g}")
                n_exact += 1
            else:
                fail(f"{name}: {t.tensor_type.name} NMSE {nmse:.3g} vs the source exceeds {bound}")
            continue
        ref = gguf.quants.quantize(src.reshape(rows, k), t.tensor_type)
        got = np.asarray(t.data).view(np.uint8).reshape(ref.shape)
        if np.array_equal(ref, got):
            print(f"  {name}: {QUANT_TYPES[t.tensor_type]} bytes identical to gguf.quants.quantize")
            n_exact += 1
        else:
            _, bb = gguf.GGML_QUANT_SIZES[t.tensor_type]
            rb = ref.reshape(-1, bb)
            gb = got.reshape(-1, bb)
            bad = np.nonzero((rb != gb).any(axis=1))[0]
            fail(f"{name}: {len(bad)} of {len(rb)} {QUANT_TYPES[t.tensor_type]} blocks differ "
                 f"from gguf.quants.quantize; first block {bad[0]}: "
                 f"want {rb[bad[0]].tobytes().hex()} got {gb[bad[0]].tobytes().hex()}")

    print(f"{len(failures)} failures; {n_exact} block tensors byte-identical to gguf.quants, "
          f"{n_int} int tensors, {n_f32} f32 tensors equal to the source")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
