#!/usr/bin/env python3
"""Write tests/data/golden_blocks.json: reference blocks that tests/formats.rs must reproduce.

GGUF formats (Q8_0, Q4_0, Q4_1) come from the `gguf` Python package (gguf/quants.py, the
numpy port of ggml's quantize_row_*_ref / dequantize_row_*), the int formats from an
independent numpy implementation of the spec in src/format/int.rs (its module docs).

    pip install gguf==0.19.0 numpy
    python3 scripts/golden_blocks.py            # rewrites tests/data/golden_blocks.json
    python3 scripts/golden_blocks.py --check    # only compares with the committed file

Contents:
- "cases": small named inputs (f32 bit patterns) with the expected block bytes (hex) per
  format, and for the GGUF formats the package's dequantization of those blocks (f32 bits).
  Int formats appear where the case length is a multiple of their group. GGUF blocks are
  those of ggml's C reference (ported below); they equal gguf-py's except the blocks listed
  in "deviations" (gguf-py's bytes next to ggml's).
- "stream": 2^20 values made from wgquant's SplitMix64 (wgquant::rng::Rng::next_u64) with
  integer-only arithmetic, so Rust rebuilds the same f32 inputs bit for bit, and the
  FNV-1a 64 hash of the quantized bytes per format.
"""

import numpy as np

from gguf.constants import GGMLQuantizationType as T
from gguf.quants import np_roundf, quantize, dequantize

import golden_common as gc

OUT = gc.out_path("golden_blocks.json")

GGUF_FORMATS = {"q8_0": T.Q8_0, "q4_0": T.Q4_0, "q4_1": T.Q4_1}
INT_FORMATS = [(bits, group, asym) for bits in (8, 4) for group in (32, 64, 128) for asym in (False, True)]


def int_name(bits, group, asym):
    return f"int{bits}_g{group}" + ("_asym" if asym else "")


def f16_sat(v):
    """f32 -> f16, round to nearest even, saturating to 65504 (scales are never negative)."""
    with np.errstate(over="ignore"):
        s = v.astype(np.float16)
    return np.where(np.isinf(s), np.float16(65504.0), s)


def int_quantize(x, bits, group, asym):
    """The int block layout and quantizer documented in src/format/int.rs."""
    x = x.astype(np.float32).reshape(-1, group)
    if asym:
        qmax = np.float32(2**bits - 1)
        lo = np.minimum(x.min(axis=1, keepdims=True), np.float32(0))
        hi = np.maximum(x.max(axis=1, keepdims=True), np.float32(0))
        s = f16_sat((hi - lo) / qmax)
        sf = s.astype(np.float32)
        ok = sf != 0
        safe = np.where(ok, sf, np.float32(1))
        z = np.where(ok, np.clip(np_roundf(-lo / safe), 0, qmax), np.float32(0))
        q = np.where(ok, np.clip(np_roundf(x / safe) + z, 0, qmax), np.float32(0))
    else:
        qmax = np.float32(2 ** (bits - 1) - 1)
        mid = np.float32(2 ** (bits - 1))
        amax = np.abs(x).max(axis=1, keepdims=True)
        s = f16_sat(amax / qmax)
        sf = s.astype(np.float32)
        ok = sf != 0
        safe = np.where(ok, sf, np.float32(1))
        q = np.where(ok, np.clip(np_roundf(x / safe), -qmax, qmax) + mid, mid)
        z = None
    q = q.astype(np.uint8)
    if bits == 4:
        q = q[:, 0::2] | (q[:, 1::2] << np.uint8(4))
    parts = [s.view(np.uint8).reshape(-1, 2)]
    if asym:
        parts.append(z.astype(np.uint8).reshape(-1, 1))
    parts.append(q)
    return np.concatenate(parts, axis=1).reshape(-1)


def int_dequantize(blocks, bits, group, asym):
    hb = 3 if asym else 2
    b = blocks.reshape(-1, hb + group * bits // 8)
    s = b[:, :2].copy().view(np.float16).astype(np.float32)
    z = b[:, 2:3].astype(np.float32) if asym else np.float32(2 ** (bits - 1))
    qs = b[:, hb:]
    if bits == 4:
        q = np.stack([qs & 15, qs >> 4], axis=2).reshape(-1, group)
    else:
        q = qs
    return (s * (q.astype(np.float32) - z)).reshape(-1)


def quant_all(x):
    """{format: (block bytes, dequantized f32)} for every format that fits len(x)."""
    out = {}
    for name, t in GGUF_FORMATS.items():
        with np.errstate(over="ignore", invalid="ignore"):
            b = quantize(x.reshape(1, -1), t).reshape(-1)
            out[name] = (b, dequantize(b.reshape(1, -1), t).reshape(-1))
    for f in INT_FORMATS:
        if len(x) % f[1] == 0:
            b = int_quantize(x, *f)
            with np.errstate(invalid="ignore"):
                out[int_name(*f)] = (b, int_dequantize(b, *f))
    return out


# A scalar, statement-by-statement port of ggml's C reference quantizers (ggml-quants.c,
# compiled without FMA contraction), in f32 arithmetic. gguf-py's vectorized versions agree
# except where numpy's min/max pick a different zero sign; the C loop is what wgquant follows.
f32 = gc.f32


def c_quantize_q8_0(x):
    out = bytearray()
    for b in x.reshape(-1, 32):
        amax = f32(0)
        for v in b:
            amax = amax if amax > abs(v) else abs(v)  # MAX(amax, fabsf(v))
        d = amax / f32(127)
        id = f32(1) / d if d != 0 else f32(0)
        out += np.float16(d).tobytes()
        out += bytes(int(np_roundf(v * id)) & 0xFF for v in b)
    return np.frombuffer(bytes(out), np.uint8)


def c_quantize_q4(x, q4_1):
    out = bytearray()
    for b in x.reshape(-1, 32):
        if q4_1:
            lo, hi = f32(np.finfo(np.float32).max), f32(-np.finfo(np.float32).max)
            for v in b:
                if v < lo:
                    lo = v
                if v > hi:
                    hi = v
            d = (hi - lo) / f32(15)
            out += np.float16(d).tobytes() + np.float16(lo).tobytes()
            off, bias = lo, f32(0.5)
        else:
            amax, mx = f32(0), f32(0)
            for v in b:
                if amax < abs(v):
                    amax, mx = abs(v), v
            d = mx / f32(-8)
            out += np.float16(d).tobytes()
            off, bias = None, f32(8.5)
        id = f32(1) / d if d != 0 else f32(0)

        def q(v):
            x0 = ((v - off) if q4_1 else v) * id
            return min(15, int(np.trunc(x0 + bias)))  # (int8_t) truncates

        out += bytes(q(b[j]) | (q(b[j + 16]) << 4) for j in range(16))
    return np.frombuffer(bytes(out), np.uint8)


C_REF = {
    "q8_0": c_quantize_q8_0,
    "q4_0": lambda x: c_quantize_q4(x, False),
    "q4_1": lambda x: c_quantize_q4(x, True),
}


def cases():
    rng = np.random.default_rng(20240601)
    normal = lambda n: rng.standard_normal(n).astype(np.float32)
    c = {}
    c["normal"] = normal(256)
    c["normal_scaled"] = normal(128) * np.repeat(np.float32([1e-3, 1.0, 1e3, 0.1]), 32)

    # |max| ties with mixed signs (Q4_0 keeps the first, sign included), and exact .5 ties.
    b0 = rng.uniform(-2.9, 2.9, 32).astype(np.float32)
    b0[3], b0[20] = -3.0, 3.0  # negative first
    b1 = rng.uniform(-2.9, 2.9, 32).astype(np.float32)
    b1[5], b1[6], b1[30] = 3.0, -3.0, 3.0  # positive first
    # Q8_0 with d = 1: q = roundf(x), halves round away from zero.
    b2 = np.float32([127, -127, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 126.5, -126.5, 63.5, -63.5,
                     0.49999997, -0.49999997, 3.5, -3.5] + [k + 0.5 for k in range(-8, 8)])
    # Q4_0 with d = 1 (max = -8): q = trunc(x + 8.5); int4 sym with s = 1: ties at .5.
    b3 = np.float32([-8, 7.5, -7.5, 0.5, -0.5, 1.5, -1.5, 6.5, -6.5, 7, -7, 8, 3.5, -3.5, 0, 0]
                    + [k / 2 for k in range(-8, 8)])
    c["ties_mixed_signs"] = np.concatenate([b0, b1, b2, b3])

    c["zeros"] = np.zeros(128, np.float32)
    sz = np.zeros(128, np.float32)
    sz[1:32:2] = -0.0  # +0 first
    sz[32:64:2] = -0.0  # -0 first
    sz[64:96] = np.float32([-0.0] * 31 + [1e-30])  # an f32 subnormal
    sz[96:] = -0.0
    c["signed_zeros_and_denormal_f32"] = sz

    out = normal(128) * np.float32(0.01)
    out[37] = 1.0e4
    out[100] = -500.0
    c["outlier"] = out

    # Near the f16 subnormal range: d in the f16 subnormals, and d below the smallest one
    # (stored as 0 while the f32 d used for the codes is not).
    tiny = normal(128)
    tiny[:32] *= np.float32(1e-5)
    tiny[32:64] *= np.float32(1e-7)
    tiny[64:96] *= np.float32(2**-24 * 127 / 3)
    tiny[96:] *= np.float32(6.1e-5)
    c["tiny"] = tiny

    c["constant"] = np.repeat(np.float32([0.7, -1.3, 1e-6, 5.0]), 32)
    c["positive_uniform"] = rng.uniform(0.5, 2.0, 128).astype(np.float32)
    # int asym with lo = -7.5, hi = 7.5: s = 1, z = round(7.5) = 8, ties everywhere.
    c["int_ties"] = np.tile(np.float32([-7.5, 7.5] + [k / 2 - 7.5 for k in range(30)]), 4)
    # Scales beyond f16: Q formats store inf, int formats saturate to 65504.
    c["f16_overflow"] = normal(32) * np.float32(1e7)
    return c


def build():
    doc = gc.header("scripts/golden_blocks.py")
    doc.update(cases=[], deviations=[])
    for name, x in cases().items():
        x = np.asarray(x, np.float32)
        entry = {"name": name, "x": gc.bits(x), "blocks": {}, "dequant": {}}
        for f, (b, d) in quant_all(x).items():
            if f in C_REF:
                with np.errstate(over="ignore", invalid="ignore"):
                    c = gc.c_reference_blocks(doc, name, f, b, C_REF[f](x), len(x))
                entry["blocks"][f] = gc.hexs(c)
                with np.errstate(over="ignore", invalid="ignore"):
                    entry["dequant"][f] = gc.bits(dequantize(c.reshape(1, -1), GGUF_FORMATS[f]).reshape(-1))
            else:
                entry["blocks"][f] = gc.hexs(b)
        doc["cases"].append(entry)
    doc["stream"] = gc.stream_entry(lambda x: {f: b for f, (b, _) in quant_all(x).items()})
    return doc


def nmse_report():
    """NMSE of weight-only quantization on 2^20 N(0,1) values (printed, not stored)."""
    x = np.random.default_rng(0).standard_normal(1 << 20).astype(np.float32)
    for f, (_, d) in quant_all(x).items():
        print(f"  {f:16s} NMSE {gc.nmse(x, d):.3e}")


if __name__ == "__main__":
    gc.main(OUT, build, nmse_report, lambda doc: f", {len(doc['cases'])} cases")
