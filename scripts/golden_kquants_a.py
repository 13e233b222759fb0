#!/usr/bin/env python3
"""Write tests/data/golden_kquants_a.json: Q4_K and Q5_K reference blocks that
tests/formats_kquants_a.rs must reproduce.

The `gguf` package (0.19.0) dequantizes K-quants but has no K-quant quantizer. So:
- dequantization: every block below goes through `gguf.quants.dequantize` (the numpy port
  of ggml's dequantize_row_q4_K / q5_K); wgquant must give the same f32 bits.
- quantization: the block bytes come from a scalar port, written here from ggml's C source
  (ggml-quants.c: quantize_row_q4_K_ref, quantize_row_q5_K_ref, make_qkx2_quants,
  nearest_int), in f32 arithmetic statement by statement and without FMA contraction. It is
  an independent second port of the C reference next to the Rust one in src/format/.
- "random_blocks": arbitrary block bytes (any d, dmin, scales, codes, including f16
  subnormals, infinities and NaN) with the package's dequantization.

    pip install gguf==0.19.0 numpy
    python3 scripts/golden_kquants_a.py            # rewrites tests/data/golden_kquants_a.json
    python3 scripts/golden_kquants_a.py --check    # only compares with the committed file

All f32 arrays and blocks are stored as little-endian hex strings.
"""

import numpy as np

from gguf.constants import GGMLQuantizationType as T
from gguf.quants import dequantize

import golden_common as gc

OUT = gc.out_path("golden_kquants_a.json")

FORMATS = {"q4_k": T.Q4_K, "q5_k": T.Q5_K}
# (nmax, rmin, nstep) of make_qkx2_quants per format; rdelta is 0.1 for both.
SEARCH = {"q4_k": (15, -1.0, 20), "q5_k": (31, -0.5, 15)}
BLOCK_BYTES = {"q4_k": 144, "q5_k": 176}

f32 = gc.f32
nearest_int = gc.nearest_int


def make_qkx2_quants(x, w, nmax, rmin, nstep):
    """Returns (scale, the_min, L) as ggml's make_qkx2_quants (squared error)."""
    return gc.make_qkx2_quants(x, w, nmax, rmin, f32(0.1), nstep, use_mad=False)


def scale_min(s, j):
    if j < 4:
        return s[j] & 63, s[j + 4] & 63
    return (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4)


def quantize_k(x, fmt):
    """One row of a multiple of 256 values -> ggml's Q4_K / Q5_K bytes."""
    nmax, rmin, nstep = SEARCH[fmt]
    out = bytearray()
    for xb in np.asarray(x, np.float32).reshape(-1, 256):
        xb = [f32(v) for v in xb]
        L = [0] * 256
        scales, mins = [], []
        max_scale = max_min = f32(0)
        for j in range(8):
            xs = xb[32 * j : 32 * j + 32]
            sum_x2 = f32(0)
            for v in xs:
                sum_x2 = sum_x2 + v * v
            av_x = np.sqrt(sum_x2 / f32(32))
            w = [av_x + abs(v) for v in xs]
            sc, m, Lj = make_qkx2_quants(xs, w, nmax, rmin, nstep)
            L[32 * j : 32 * j + 32] = Lj
            scales.append(sc)
            mins.append(m)
            if sc > max_scale:
                max_scale = sc
            if m > max_min:
                max_min = m
        inv_scale = f32(63) / max_scale if max_scale > 0 else f32(0)
        inv_min = f32(63) / max_min if max_min > 0 else f32(0)
        s = [0] * 12
        for j in range(8):
            ls = min(63, nearest_int(inv_scale * scales[j]) & 0xFF)  # stored in a uint8_t
            lm = min(63, nearest_int(inv_min * mins[j]) & 0xFF)
            if j < 4:
                s[j] = ls
                s[j + 4] = lm
            else:
                s[j + 4] = (ls & 0xF) | ((lm & 0xF) << 4)
                s[j - 4] |= (ls >> 4) << 6
                s[j] |= (lm >> 4) << 6
        with np.errstate(over="ignore"):
            d = np.float16(max_scale / f32(63))
            dmin = np.float16(max_min / f32(63))
        for j in range(8):
            sc, m = scale_min(s, j)
            dj = f32(d) * f32(sc)
            if dj == 0:
                continue
            dm = f32(dmin) * f32(m)
            for i in range(32 * j, 32 * j + 32):
                with np.errstate(invalid="ignore"):
                    L[i] = max(0, min(nmax, nearest_int((xb[i] + dm) / dj)))
        qs = bytearray(128)
        qh = bytearray(32)
        for i, l in enumerate(L):
            qs[32 * (i // 64) + i % 32] |= (l & 15) << (0 if i % 64 < 32 else 4)
            qh[i % 32] |= (l >> 4) << (i // 32)
        out += d.tobytes() + dmin.tobytes() + bytes(s)
        if fmt == "q5_k":
            out += bytes(qh)
        out += bytes(qs)
    return np.frombuffer(bytes(out), np.uint8)


def cases():
    rng = np.random.default_rng(20240612)
    normal = lambda n: rng.standard_normal(n).astype(np.float32)
    c = {}
    c["normal"] = normal(512)
    # Sub-block scales 6 decades apart: small ones get 6-bit scale 0 (codes of the search kept).
    c["normal_scaled"] = normal(256) * np.repeat(f32([1e-3, 1, 1e3, 0.1, 10, 1e-2, 3, 0.5]), 32)
    c["zeros"] = np.zeros(256, np.float32)
    sz = np.zeros(256, np.float32)
    sz[1::2] = -0.0
    sz[128:] = -0.0
    sz[200] = 1e-30  # an f32 subnormal
    c["signed_zeros"] = sz
    c["constant"] = np.repeat(f32([0.7, -1.3, 1e-6, 5.0, -5.0, 0.0, 2.0, -0.1]), 32)
    c["positive_uniform"] = rng.uniform(0.5, 2.0, 256).astype(np.float32)
    c["negative_uniform"] = rng.uniform(-2.0, -0.5, 256).astype(np.float32)
    out = normal(256) * f32(0.01)
    out[37] = 1.0e4
    out[200] = -500.0
    c["outlier"] = out
    tiny = normal(256)
    tiny *= np.repeat(f32([1e-5, 1e-7, 2**-24 * 15, 6.1e-5, 1e-9, 1e-3, 3e-8, 1e-6]), 32)
    c["tiny"] = tiny
    # Values on an integer grid and exact halves: nearest_int ties go to even.
    grid = np.tile(np.arange(32, dtype=np.float32), 8)
    grid[32:64] = np.arange(32, dtype=np.float32) / 2  # halves
    grid[64:96] = np.arange(32, dtype=np.float32) % 16  # 4-bit grid
    grid[96:128] = -np.arange(32, dtype=np.float32) + 0.5
    c["ties"] = grid
    c["f16_overflow"] = normal(256) * f32(1e7)
    return c


def random_blocks(fmt, rng):
    """Arbitrary bytes, and blocks whose d, dmin span the f16 range (subnormals included)."""
    bb = BLOCK_BYTES[fmt]
    blocks = [rng.integers(0, 256, bb, dtype=np.uint8) for _ in range(3)]
    for e in (-24, -14, -3, 0, 5, 15):
        b = rng.integers(0, 256, bb, dtype=np.uint8)
        d = np.float16(rng.uniform(1, 2) * 2.0**e)
        dmin = np.float16(rng.uniform(1, 2) * 2.0 ** (e - 1))
        b[:4] = np.frombuffer(d.tobytes() + dmin.tobytes(), np.uint8)
        blocks.append(b)
    return blocks


def deq(block_bytes, fmt):
    with np.errstate(over="ignore", invalid="ignore"):
        return dequantize(block_bytes.reshape(1, -1), FORMATS[fmt]).reshape(-1).astype(np.float32)


def build():
    doc = gc.header("scripts/golden_kquants_a.py")
    doc.update(cases=[], random_blocks=[])
    for name, x in cases().items():
        x = np.asarray(x, np.float32)
        entry = {"name": name, "x": gc.f32hex(x), "blocks": {}, "dequant": {}}
        for fmt in FORMATS:
            with np.errstate(over="ignore", invalid="ignore"):
                b = quantize_k(x, fmt)
            entry["blocks"][fmt] = gc.hexs(b)
            entry["dequant"][fmt] = gc.f32hex(deq(b, fmt))
        doc["cases"].append(entry)
    rng = np.random.default_rng(7)
    for fmt in FORMATS:
        for b in random_blocks(fmt, rng):
            doc["random_blocks"].append({"format": fmt, "block": gc.hexs(b), "dequant": gc.f32hex(deq(b, fmt))})
    return doc


def nmse_report():
    """NMSE of this port on 2^16 N(0,1) values (printed; the scalar port is slow)."""
    x = np.random.default_rng(0).standard_normal(1 << 16).astype(np.float32)
    for fmt in FORMATS:
        print(f"  {fmt} NMSE {gc.nmse(x, deq(quantize_k(x, fmt), fmt)):.3e}")


if __name__ == "__main__":
    gc.main(OUT, build, nmse_report)
