#!/usr/bin/env python3
"""Write tests/data/golden_kquants_b.json: reference blocks for Q6_K and Q2_K that
tests/formats_kquants_b.rs must reproduce.

gguf-py (0.19.0) dequantizes K-quants but has no K-quant quantizer, so:
- "dequant": 12 arbitrary blocks per format (random bytes with finite f16 scales of many
  magnitudes, plus edge blocks) and `gguf.quants.dequantize` of them. The Rust
  dequantization must match bit for bit.
- "quant": small named inputs, the blocks of a scalar float32 port of ggml's C reference
  quantizers below (quantize_row_q6_K_ref with make_qx_quants, quantize_row_q2_K_ref with
  make_qkx2_quants, ggml-quants.c, without FMA contraction), and gguf-py's dequantization
  of those blocks. This port is written from ggml's C independently of the Rust one.
f32 arrays (inputs "x", dequantized "values") are hex strings of little-endian f32 bytes.

    pip install gguf==0.19.0 numpy
    python3 scripts/golden_kquants_b.py            # rewrites the JSON
    python3 scripts/golden_kquants_b.py --check    # only compares with the committed file
    python3 scripts/golden_kquants_b.py --nmse     # also prints NMSE on 2^16 N(0,1) values
"""

import numpy as np

from gguf.constants import GGMLQuantizationType as T
from gguf.quants import dequantize

import golden_common as gc

OUT = gc.out_path("golden_kquants_b.json")

FORMATS = {"q6_k": (T.Q6_K, 210), "q2_k": (T.Q2_K, 84)}

f32 = gc.f32
GROUP_MAX_EPS = f32(1e-15)
nearest_int = gc.nearest_int


def to_f16(v):
    with np.errstate(over="ignore"):
        return np.float16(f32(v))


def f16_bytes(h):
    return np.array([h], np.float16).tobytes()


def i8(v):
    """C's conversion of an int to int8_t / uint8_t storage: the low byte."""
    return v & 0xFF


# ------------------------------------------------------------------ Q6_K


def make_qx_quants(x, nmax):
    """make_qx_quants(n=16, nmax, x, L, rmse_type=1, qw=NULL): (scale, L as l + nmax)."""
    mx, amax = f32(0), f32(0)
    for v in x:
        ax = abs(v)
        if ax > amax:
            amax, mx = ax, v
    if amax < GROUP_MAX_EPS:
        return f32(0), [0] * len(x)

    def q(iscale, v):
        return max(-nmax, min(nmax - 1, nearest_int(iscale * v)))

    def sums(iscale):
        sumlx, suml2 = f32(0), f32(0)
        for v in x:
            l = f32(q(iscale, v))
            w = v * v
            sumlx = sumlx + w * v * l
            suml2 = suml2 + w * l * l
        return sumlx, suml2

    iscale = f32(-nmax) / mx
    L = [q(iscale, v) + nmax for v in x]
    sumlx, suml2 = sums(iscale)
    scale = sumlx / suml2 if suml2 != 0 else f32(0)
    best = scale * sumlx
    for s in range(-9, 10):
        if s == 0:
            continue
        iscale = -(f32(nmax) + f32(0.1) * f32(s)) / mx
        sumlx, suml2 = sums(iscale)
        if suml2 > 0 and sumlx * sumlx > best * suml2:
            L = [q(iscale, v) + nmax for v in x]
            scale = sumlx / suml2
            best = scale * sumlx
    return scale, L


def quantize_q6_k(x):
    out = bytearray()
    for b in x.reshape(-1, 256):
        L = [0] * 256
        scales = []
        max_scale, max_abs = f32(0), f32(0)
        for j in range(16):
            s, l = make_qx_quants(b[16 * j : 16 * j + 16], 32)
            L[16 * j : 16 * j + 16] = l
            scales.append(s)
            if abs(s) > max_abs:
                max_abs, max_scale = abs(s), s
        if max_abs < GROUP_MAX_EPS:
            out += bytes(210)
            continue
        iscale = f32(-128.0) / max_scale
        d = to_f16(f32(1) / iscale)
        sc = [i8(min(127, nearest_int(iscale * s))) for s in scales]
        for j in range(16):
            sj = sc[j] - 256 if sc[j] > 127 else sc[j]
            dj = f32(d) * f32(sj)
            if dj == 0:
                continue
            for i in range(16):
                with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                    l = nearest_int(b[16 * j + i] / dj)
                L[16 * j + i] = max(-32, min(31, l)) + 32
        ql, qh = bytearray(128), bytearray(64)
        for h in range(2):
            for l in range(32):
                q = [L[128 * h + 32 * k + l] for k in range(4)]
                ql[64 * h + l] = (q[0] & 15) | ((q[2] & 15) << 4)
                ql[64 * h + l + 32] = (q[1] & 15) | ((q[3] & 15) << 4)
                qh[32 * h + l] = sum((q[k] >> 4) << (2 * k) for k in range(4))
        out += ql + qh + bytes(sc) + f16_bytes(d)
    return np.frombuffer(bytes(out), np.uint8)


# ------------------------------------------------------------------ Q2_K


def make_qkx2_quants(x, w, nmax=3, rmin=f32(-0.5), rdelta=f32(0.1), nstep=15):
    """make_qkx2_quants(16, nmax, ...) with use_mad: (scale, the_min, L)."""
    return gc.make_qkx2_quants(x, w, nmax, rmin, rdelta, nstep, use_mad=True)


def quantize_q2_k(x):
    out = bytearray()
    for b in x.reshape(-1, 256):
        L = [0] * 256
        scales, mins = [], []
        max_scale, max_min = f32(0), f32(0)
        for j in range(16):
            xs = b[16 * j : 16 * j + 16]
            s, m, l = make_qkx2_quants(xs, np.abs(xs))
            L[16 * j : 16 * j + 16] = l
            scales.append(s)
            mins.append(m)
            if s > max_scale:
                max_scale = s
            if m > max_min:
                max_min = m
        sc = [0] * 16
        d = dmin = np.float16(0)
        if max_scale > 0:
            iscale = f32(15) / max_scale
            sc = [i8(nearest_int(iscale * s)) for s in scales]
            d = to_f16(max_scale / f32(15))
        if max_min > 0:
            iscale = f32(15) / max_min
            sc = [i8(c | (nearest_int(iscale * m) << 4)) for c, m in zip(sc, mins)]
            dmin = to_f16(max_min / f32(15))
        for j in range(16):
            dj = f32(d) * f32(sc[j] & 15)
            if dj == 0:
                continue
            mj = f32(dmin) * f32(sc[j] >> 4)
            for i in range(16):
                with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                    l = nearest_int((b[16 * j + i] + mj) / dj)
                L[16 * j + i] = max(0, min(3, l))
        qs = bytearray(64)
        for h in range(2):
            for l in range(32):
                qs[32 * h + l] = sum(L[128 * h + 32 * k + l] << (2 * k) for k in range(4))
        out += bytes(sc) + qs + f16_bytes(d) + f16_bytes(dmin)
    return np.frombuffer(bytes(out), np.uint8)


QUANTIZE = {"q6_k": quantize_q6_k, "q2_k": quantize_q2_k}

# ------------------------------------------------------------------ inputs


def quant_cases():
    rng = np.random.default_rng(20250314)
    normal = lambda n: rng.standard_normal(n).astype(np.float32)
    c = {}
    c["normal"] = normal(256)
    # Sub-block magnitudes from 1e-4 to 1e3 within one super-block.
    c["mixed_scales"] = normal(256) * np.repeat(np.float32([10.0 ** (k % 8 - 4) for k in range(16)]), 16)
    c["zeros"] = np.zeros(256, np.float32)
    z = np.zeros(256, np.float32)
    z[3::7] = -0.0
    z[200] = 1e-30
    c["signed_zeros_and_denormal_f32"] = z
    out = normal(256) * np.float32(0.01)
    out[37] = 1.0e4
    out[200] = -500.0
    c["outlier"] = out
    tiny = normal(256)
    tiny[:128] *= np.float32(1e-6)
    tiny[128:] *= np.float32(1e-9)
    c["tiny"] = tiny
    c["constant"] = np.repeat(np.float32([0.7, -1.3, 1e-6, 5.0]), 64)
    c["positive_uniform"] = rng.uniform(0.5, 2.0, 256).astype(np.float32)
    # Values on a grid of halves: many exact ties for nearest_int.
    c["ties"] = (rng.integers(-64, 64, 256) / 2).astype(np.float32)
    # One non-zero sub-block among zeros, and a single spike.
    one = np.zeros(256, np.float32)
    one[48:64] = normal(16)
    one[255] = 3.0
    c["sparse"] = one
    return c


def random_f16(rng, n, signed):
    """Finite f16 scales from subnormal to ~1e4 (and 0)."""
    e = rng.uniform(-26, 14, n)
    v = np.exp2(e) * (np.where(rng.random(n) < 0.5, -1, 1) if signed else 1)
    v[rng.random(n) < 0.05] = 0
    return v.astype(np.float16)


def dequant_blocks(name, rng, count):
    t, bb = FORMATS[name]
    b = rng.integers(0, 256, (count, bb), dtype=np.uint8)
    if name == "q6_k":
        b[:, 208:210] = random_f16(rng, count, True).view(np.uint8).reshape(-1, 2)
        b[0] = 0
        b[1] = 0xFF
        b[1, 208:210] = np.frombuffer(f16_bytes(np.float16(1.0)), np.uint8)
        b[2, 192:208] = np.uint8(0x80)  # every scale -128
        b[2, 208:210] = np.frombuffer(f16_bytes(np.float16(65504.0)), np.uint8)
    else:
        b[:, 80:82] = random_f16(rng, count, False).view(np.uint8).reshape(-1, 2)
        b[:, 82:84] = random_f16(rng, count, False).view(np.uint8).reshape(-1, 2)
        b[0] = 0
        b[1] = 0xFF
        b[1, 80:84] = np.frombuffer(f16_bytes(np.float16(1.0)) * 2, np.uint8)
        b[2, 80:84] = np.frombuffer(f16_bytes(np.float16(65504.0)) * 2, np.uint8)
    return b


def build():
    doc = gc.header("scripts/golden_kquants_b.py")
    doc.update(dequant=[], quant=[])
    rng = np.random.default_rng(777)
    for name, (t, bb) in FORMATS.items():
        blocks = dequant_blocks(name, rng, 12)
        with np.errstate(over="ignore", invalid="ignore"):
            y = dequantize(blocks.reshape(1, -1), t).reshape(-1, 256)
        for blk, v in zip(blocks, y):
            doc["dequant"].append({"format": name, "block": gc.hexs(blk), "values": gc.f32hex(v)})
    for case, x in quant_cases().items():
        x = np.asarray(x, np.float32)
        entry = {"name": case, "x": gc.f32hex(x), "blocks": {}, "dequant": {}}
        for name, (t, _) in FORMATS.items():
            b = QUANTIZE[name](x)
            entry["blocks"][name] = gc.hexs(b)
            with np.errstate(over="ignore", invalid="ignore"):
                entry["dequant"][name] = gc.f32hex(dequantize(b.reshape(1, -1), t).reshape(-1))
        doc["quant"].append(entry)
    return doc


def nmse_report():
    x = np.random.default_rng(0).standard_normal(1 << 16).astype(np.float32)
    for name, (t, _) in FORMATS.items():
        d = dequantize(QUANTIZE[name](x).reshape(1, -1), t).reshape(-1)
        print(f"  {name:6s} NMSE {gc.nmse(x, d):.3e}")


if __name__ == "__main__":
    gc.main(OUT, build, nmse_report)
