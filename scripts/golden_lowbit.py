#!/usr/bin/env python3
"""Write tests/data/golden_lowbit.json: reference blocks that tests/formats_lowbit.rs must
reproduce for TQ1_0, TQ2_0, NF4 and the 1-bit formats b1_g32 / b1_g64 / b1_g128.

- TQ1_0, TQ2_0: bytes from the `gguf` Python package's quantize (gguf/quants.py, the numpy
  port of ggml's quantize_row_tq{1,2}_0_ref) and values from its dequantize, plus random
  blocks (random code bytes, random finite f16 d) with the package's dequantization.
- NF4: an independent numpy implementation of bitsandbytes' blockwise NF4 (blocksize 64,
  f32 absmax, nearest code by f32 midpoints, ties to the lower code, first weight in the
  high nibble), as documented in src/format/nf4.rs.
- b1_g*: an independent implementation of the rule in src/format/binary.rs.

    pip install gguf==0.19.0 numpy
    python3 scripts/golden_lowbit.py            # rewrites tests/data/golden_lowbit.json
    python3 scripts/golden_lowbit.py --check    # only compares with the committed file
    python3 scripts/golden_lowbit.py --nmse     # also prints NMSE on 2^20 N(0,1) values
"""

import numpy as np

from gguf.constants import GGMLQuantizationType as T
from gguf.quants import quantize, dequantize

import golden_common as gc

OUT = gc.out_path("golden_lowbit.json")

GGUF_FORMATS = {"tq1_0": T.TQ1_0, "tq2_0": T.TQ2_0}

# bitsandbytes' NF4 table (functional.py get_4bit_type("nf4")), exact f32 values.
NF4 = np.float32([
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
])
NF4_MIDS = ((NF4[:-1].astype(np.float64) + NF4[1:].astype(np.float64)) / 2).astype(np.float32)


def nf4_quantize(x):
    b = x.astype(np.float32).reshape(-1, 64)
    absmax = np.abs(b).max(axis=1, keepdims=True)
    ok = absmax != 0
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        inv = np.float32(1) / absmax
        # An f32-subnormal absmax has no finite inverse: divide instead.
        v = np.where(np.isfinite(inv), b * inv, b / absmax)
    q = (v[:, :, None] > NF4_MIDS[None, None, :]).sum(axis=2).astype(np.uint8)
    q = np.where(ok, q, np.uint8(7))
    packed = (q[:, 0::2] << np.uint8(4)) | q[:, 1::2]
    return np.concatenate([absmax.astype("<f4").view(np.uint8), packed], axis=1).reshape(-1)


def nf4_dequantize(blocks):
    b = blocks.reshape(-1, 36)
    absmax = b[:, :4].copy().view("<f4")
    qs = b[:, 4:]
    q = np.stack([qs >> 4, qs & 15], axis=2).reshape(-1, 64)
    return (NF4[q] * absmax).reshape(-1)


def b1_quantize(x, group):
    out = bytearray()
    for g in x.astype(np.float32).reshape(-1, group):
        total = 0.0
        for v in g:  # f64, in weight order
            total += abs(float(v))
        with np.errstate(over="ignore"):
            s = np.float64(total / group).astype(np.float16)  # one rounding, f64 -> f16
        if np.isinf(s):
            s = np.float16(65504.0)
        bits = np.ones(group, np.uint8) if s == 0 else (g >= 0).astype(np.uint8)
        out += s.tobytes() + np.packbits(bits, bitorder="little").tobytes()
    return np.frombuffer(bytes(out), np.uint8)


def b1_dequantize(blocks, group):
    b = blocks.reshape(-1, 2 + group // 8)
    s = b[:, :2].copy().view(np.float16).astype(np.float32)
    bits = np.unpackbits(b[:, 2:], axis=1, bitorder="little")
    return np.where(bits == 1, s, -s).reshape(-1)


def quant_all(x):
    """{format: (block bytes, dequantized f32)} for every format."""
    out = {}
    for name, t in GGUF_FORMATS.items():
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            b = quantize(x.reshape(1, -1), t).reshape(-1)
            out[name] = (b, dequantize(b.reshape(1, -1), t).reshape(-1))
    b = nf4_quantize(x)
    out["nf4"] = (b, nf4_dequantize(b))
    for g in (32, 64, 128):
        b = b1_quantize(x, g)
        out[f"b1_g{g}"] = (b, b1_dequantize(b, g))
    return out


def cases():
    rng = np.random.default_rng(20250117)
    normal = lambda n: rng.standard_normal(n).astype(np.float32)
    c = {}
    c["normal"] = normal(256)
    c["normal_scaled"] = normal(256) * np.repeat(np.float32([1e-3, 1.0, 1e3, 0.1]), 64)

    # Ternary-trained weights {-a, 0, a}, and x / d exactly +-0.5 (round half away from 0).
    t = rng.integers(-1, 2, 256).astype(np.float32) * np.float32(0.37)
    h = rng.choice(np.float32([-2, -1, 0, 1, 2]), 256).astype(np.float32)
    h[7] = 2.0
    c["ternary_and_halves"] = np.concatenate([t, h])

    z = np.zeros(256, np.float32)
    z[1::3] = -0.0
    c["zeros"] = z

    out = normal(256) * np.float32(0.01)
    out[37] = 1.0e4
    out[200] = -500.0
    c["outlier"] = out

    # d an f16 subnormal; d below the smallest f16 (stored 0, codes still from the f32 d);
    # f32 subnormal inputs.
    tiny = np.concatenate([normal(256) * np.float32(1e-6), normal(256) * np.float32(1e-9),
                           normal(256) * np.float32(1e-40)])
    c["tiny"] = tiny

    # NF4 midpoints exactly (absmax 1: ties go to the lower code) and one f32 ulp above.
    m = NF4_MIDS
    up = np.nextafter(m, np.float32(2))
    nt = np.concatenate([[np.float32(1.0)], m, up, -m[::-1], [0, -0.0]]).astype(np.float32)
    nt = np.concatenate([nt, np.zeros(64 - len(nt) % 64 if len(nt) % 64 else 0, np.float32)])
    c["nf4_ties"] = np.resize(nt, 256).astype(np.float32)

    # 1-bit scale: the mean is 31/32 + 2^-12 + 2^-40 (just above an f16 tie; rounding via f32
    # would land on the tie and go down). Then signed zeros and constant groups.
    g = np.ones(128, np.float32)
    g[0] = np.float32(1 + 2.0**-7)
    g[1] = np.float32(2.0**-35)
    g[32:64] = -0.0
    g[64:96] = np.float32(-0.75)
    g[96:] = np.where(np.arange(32) % 2 == 0, np.float32(0.0), np.float32(-3.0))
    c["b1_rounding_and_signs"] = np.concatenate([g, normal(128)])

    # Scales beyond f16: TQ stores inf, b1 saturates to 65504, NF4's f32 absmax is exact.
    c["f16_overflow"] = normal(256) * np.float32(1e6)
    c["constant"] = np.repeat(np.float32([0.7, -1.3]), 128)
    return c


def random_blocks():
    """Random code bytes with random finite f16 d: the package's dequantization."""
    rng = np.random.default_rng(7)
    out = {}
    for name, t in GGUF_FORMATS.items():
        bb = 54 if name == "tq1_0" else 66
        b = rng.integers(0, 256, (8, bb), dtype=np.uint8)
        d = rng.integers(0, 0x7C00, 8).astype(np.uint16) | (rng.integers(0, 2, 8).astype(np.uint16) << 15)
        b[:, -2:] = d.astype("<u2").view(np.uint8).reshape(8, 2)
        b[0, :-2] = 0xFF  # includes TQ1_0 bytes >= 243 and TQ2_0 code 3
        out[name] = {"blocks": gc.hexs(b.reshape(-1)), "dequant": gc.bits(dequantize(b, t).reshape(-1))}
    return out


def build():
    doc = gc.header("scripts/golden_lowbit.py")
    doc["cases"] = []
    for name, x in cases().items():
        x = np.asarray(x, np.float32)
        entry = {"name": name, "x": gc.bits(x), "blocks": {}, "dequant": {}}  # dequant: gguf's, TQ only
        for f, (b, d) in quant_all(x).items():
            entry["blocks"][f] = gc.hexs(b)
            if f in GGUF_FORMATS:
                entry["dequant"][f] = gc.bits(d)
        doc["cases"].append(entry)
    doc["random_blocks"] = random_blocks()
    return doc


def nmse_report():
    x = np.random.default_rng(0).standard_normal(1 << 20).astype(np.float32)
    for f, (_, d) in quant_all(x).items():
        print(f"  {f:10s} NMSE {gc.nmse(x, d):.4e}")


if __name__ == "__main__":
    gc.main(OUT, build, nmse_report)
