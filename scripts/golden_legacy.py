#!/usr/bin/env python3
"""Write tests/data/golden_legacy.json: reference blocks for Q5_0, Q5_1, IQ4_NL and MXFP4
that tests/formats_legacy.rs must reproduce.

    pip install gguf==0.19.0 numpy
    python3 scripts/golden_legacy.py            # rewrites tests/data/golden_legacy.json
    python3 scripts/golden_legacy.py --check    # only compares with the committed file
    python3 scripts/golden_legacy.py --nmse     # also prints NMSE on 2^20 N(0,1) values

Sources of truth:
- Q5_0, Q5_1, MXFP4 blocks: `gguf.quants.quantize` (gguf-py's numpy port of ggml's
  quantize_row_*_ref), cross-checked against a scalar port of ggml's C loops below. Where
  the two differ (only numpy's min picking the other sign of a zero for Q5_1) the C bytes
  are expected and both are listed in "deviations".
- Dequantization of every format, IQ4_NL included: `gguf.quants.dequantize` on random
  block bytes ("random_blocks": E8M0 exponents at both ends, f16 scales
  across the whole range including subnormals, infinities and NaN).
- IQ4_NL blocks: gguf-py cannot quantize IQ4_NL, so they come from an independent numpy
  port (below) of ggml's quantize_row_iq4_nl_impl for one 32-block with no importance
  matrix, with ntry = 7 (ggml's quantize_iq4_nl, the codec's quantizer) and ntry = -1
  (quantize_row_iq4_nl_ref, key "iq4_nl_ref").
- "stream": the 2^20-value stream of scripts/golden_common.py (SplitMix64, exact in f32)
  and the FNV-1a 64 hash of the quantized bytes per format.
"""

import numpy as np

from gguf.constants import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

import golden_blocks as gb  # the cases of the main golden script
import golden_common as gc

OUT = gc.out_path("golden_legacy.json")

TYPES = {"q5_0": T.Q5_0, "q5_1": T.Q5_1, "iq4_nl": T.IQ4_NL, "mxfp4": T.MXFP4}
f32 = gc.f32

KV_IQ4NL = np.array([-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113], np.int32)
KV_MXFP4 = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12]


def pack_q4(L):
    """(nb, 32) codes 0..15 -> ggml's qs: byte j = code j | code j+16 << 4."""
    L = L.astype(np.uint8)
    return L[:, :16] | (L[:, 16:] << np.uint8(4))


# ---------------------------------------------------------------- IQ4_NL quantizer port


def nearest_iq4nl(v):
    """Index of the grid value nearest to v (ties up): 2v >= kv[i-1] + kv[i] (exact)."""
    v2 = v + v
    idx = np.zeros(v.shape, np.int32)
    for step in (8, 4, 2, 1):
        j = idx + step
        mid = (KV_IQ4NL[j - 1] + KV_IQ4NL[j]).astype(np.float32)
        idx = np.where(v2 >= mid, j, idx)
    return idx


def quantize_iq4_nl(x, ntry):
    """ggml's quantize_row_iq4_nl_impl(32, 32, ...) per block, no importance weights, f32
    arithmetic in ggml's order (sums accumulated left to right, no FMA)."""
    x = x.astype(np.float32).reshape(-1, 32)
    nb = x.shape[0]
    with np.errstate(over="ignore"):
        w = x * x
    ax = np.abs(x)
    first = np.argmax(ax, axis=1)  # first index of the largest magnitude (ggml: strict >)
    mx = x[np.arange(nb), first]
    amax = ax[np.arange(nb), first]
    ok = amax >= f32(1e-15)
    safe_mx = np.where(ok, mx, f32(1))

    def sums(idv):
        L = nearest_iq4nl(idv[:, None] * x)
        q = KV_IQ4NL[L].astype(np.float32)
        sqx = np.zeros(nb, np.float32)
        sq2 = np.zeros(nb, np.float32)
        for j in range(32):
            sqx = sqx + w[:, j] * q[:, j] * x[:, j]
            sq2 = sq2 + w[:, j] * q[:, j] * q[:, j]
        return L, sqx, sq2

    kv0 = f32(KV_IQ4NL[0])
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        d0 = (-safe_mx / kv0) if ntry > 0 else (safe_mx / kv0)
        L, sqx, sq2 = sums(f32(1) / d0)
        d = np.where(sq2 > 0, sqx / np.where(sq2 > 0, sq2, f32(1)), f32(0)).astype(np.float32)
        best = d * sqx
        for itry in range(-ntry, ntry + 1):
            idv = f32(itry + KV_IQ4NL[0]) / safe_mx
            _, sqx, sq2 = sums(idv)
            better = (sq2 > 0) & (sqx * sqx > best * sq2)
            dn = sqx / np.where(sq2 > 0, sq2, f32(1))
            d = np.where(better, dn, d).astype(np.float32)
            best = np.where(better, d * sqx, best).astype(np.float32)
        d = np.where(ok, d, f32(0))
        L = np.where(ok[:, None], L, 0)
        if ntry > 0:
            idv = np.where(d != 0, f32(1) / np.where(d != 0, d, f32(1)), f32(0)).astype(np.float32)
            L = nearest_iq4nl(idv[:, None] * x)
        dh = d.astype(np.float16).view(np.uint8).reshape(nb, 2)
    return np.concatenate([dh, pack_q4(L)], axis=1).reshape(-1)


# ---------------------------------------------------------------- scalar ports of ggml's C


def c_byte(v):
    """(int8_t) / (uint8_t) of a float as x86 code does it: cvttss2si (NaN and out of range
    give INT_MIN), then the low byte."""
    i = -(2**31) if (np.isnan(v) or abs(v) >= 2.0**31) else int(np.trunc(v))
    return i & 0xFF


def c_quantize_q5_0(x):
    out = bytearray()
    for b in x.reshape(-1, 32):
        amax, mx = f32(0), f32(0)
        for v in b:
            if amax < abs(v):
                amax, mx = abs(v), v
        d = mx / f32(-16)
        id = f32(1) / d if d != 0 else f32(0)
        q = [min(31, (c_byte(v * id + f32(16.5)) ^ 0x80) - 0x80) & 0xFF for v in b]  # MIN(31, (int8_t)..)
        qh = sum(((c >> 4) & 1) << j for j, c in enumerate(q))
        out += np.float16(d).tobytes() + qh.to_bytes(4, "little")
        out += bytes((q[j] & 15) | ((q[j + 16] & 15) << 4) for j in range(16))
    return np.frombuffer(bytes(out), np.uint8)


def c_quantize_q5_1(x):
    out = bytearray()
    for b in x.reshape(-1, 32):
        lo, hi = f32(np.finfo(np.float32).max), f32(-np.finfo(np.float32).max)
        for v in b:
            if v < lo:
                lo = v
            if v > hi:
                hi = v
        d = (hi - lo) / f32(31)
        id = f32(1) / d if d != 0 else f32(0)
        q = [c_byte((v - lo) * id + f32(0.5)) for v in b]
        qh = sum(((c >> 4) & 1) << j for j, c in enumerate(q))
        out += np.float16(d).tobytes() + np.float16(lo).tobytes() + qh.to_bytes(4, "little")
        out += bytes((q[j] & 15) | ((q[j + 16] & 15) << 4) for j in range(16))
    return np.frombuffer(bytes(out), np.uint8)


def e8m0_half(e):
    bits = (0x00200000 << e) if e < 2 else ((e - 1) << 23)
    return np.array([bits], np.uint32).view(np.float32)[0]


def c_quantize_mxfp4(x):
    import ctypes
    import ctypes.util

    libm = ctypes.CDLL(ctypes.util.find_library("m"))
    libm.log2f.restype = ctypes.c_float
    libm.log2f.argtypes = [ctypes.c_float]
    out = bytearray()
    for b in x.reshape(-1, 32):
        amax = f32(0)
        for v in b:
            if amax < abs(v):
                amax = abs(v)
        # (uint8_t)(floorf(log2f(amax)) - 2 + 127): x86 converts through int, modulo 256.
        e = (int(np.floor(f32(libm.log2f(float(amax))))) + 125) % 256 if amax > 0 else 0
        d = e8m0_half(e)

        def best(v):
            errs = [abs(f32(k) * d - v) for k in KV_MXFP4]
            bi = 0
            for i in range(1, 16):
                if errs[i] < errs[bi]:
                    bi = i
            return bi

        out += bytes([e]) + bytes(best(b[j]) | (best(b[j + 16]) << 4) for j in range(16))
    return np.frombuffer(bytes(out), np.uint8)


C_REF = {"q5_0": c_quantize_q5_0, "q5_1": c_quantize_q5_1, "mxfp4": c_quantize_mxfp4}


def quant_all(x):
    """{format: block bytes} for the four formats (plus iq4_nl_ref), gguf-py's where it has
    a quantizer."""
    out = {}
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for name in ("q5_0", "q5_1", "mxfp4"):
            out[name] = quantize(x.reshape(1, -1), TYPES[name]).reshape(-1)
    out["iq4_nl"] = quantize_iq4_nl(x, 7)
    out["iq4_nl_ref"] = quantize_iq4_nl(x, -1)
    return out


def deq(name, b):
    t = TYPES["iq4_nl" if name == "iq4_nl_ref" else name]
    with np.errstate(over="ignore", invalid="ignore"):
        return dequantize(np.asarray(b, np.uint8).reshape(1, -1), t).reshape(-1)


# ---------------------------------------------------------------- cases


def extra_cases():
    rng = np.random.default_rng(20250317)
    c = {}
    # Q5_0 with d = -1 (max = 16): q = trunc(x + 16.5), ties at .5; Q5_1 with d = 1.
    c["q5_ties"] = np.concatenate(
        [
            np.float32([16, -15.5, 15.5, 0.5, -0.5, 1.5, -1.5, 14.5, -14.5, 7, -7, 3.5, -3.5, 0, 0, 9.5]
                       + [k / 2 for k in range(-8, 8)]),
            np.float32([0, 31] + [k + 0.5 for k in range(30)]),
        ]
    )
    # MXFP4: amax at and just below powers of two (log2f rounding decides the exponent),
    # values halfway between E2M1 levels, and exponents that wrap (amax < 2^-125).
    blocks = []
    for k in (-130, -126, -125, -100, -20, -4, -3, -1, 0, 1, 2, 3, 4, 5, 10, 60, 100, 127):
        for below in (False, True):
            p = np.float32(2.0**k)
            top = np.nextafter(p, np.float32(0)) if below else p
            b = rng.uniform(-1, 1, 32).astype(np.float32) * top
            b[int(rng.integers(32))] = -top if k % 2 else top
            blocks.append(b)
    # Halfway points at scale 1 (e = 127 when amax in [4, 8)): 0.25, 0.75, 1.25, 1.75,
    # 2.5, 3.5, 5, and their negatives.
    halves = np.float32([6, 0.25, -0.25, 0.75, -0.75, 1.25, -1.25, 1.75, -1.75, 2.5, -2.5, 3.5, -3.5, 5, -5, 0]
                        + [k / 4 for k in range(-8, 8)])
    blocks.append(halves)
    c["mxfp4_exponents"] = np.concatenate(blocks)
    # IQ4_NL: an outlier block, one near the grid midpoints, a block of tiny values
    # (|max| < 1e-15 is all-zero for ggml) and one just above.
    io = rng.standard_normal(128).astype(np.float32)
    io[3] = 40.0
    io[32:64] = np.float32([(KV_IQ4NL[i % 16] + KV_IQ4NL[min(i % 16 + 1, 15)]) / 2 for i in range(32)]) / 100
    io[64:96] *= np.float32(1e-16)
    io[96:] *= np.float32(1e-14)
    c["iq4_nl_edges"] = io
    return c


def random_blocks(seed=7):
    """Random block bytes per format: dequantization only."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, bb in (("q5_0", 22), ("q5_1", 24), ("iq4_nl", 18), ("mxfp4", 17)):
        n = 64 if name == "mxfp4" else 32
        b = rng.integers(0, 256, (n, bb), dtype=np.uint8)
        if name == "mxfp4":
            # Exponents at both ends (f32 subnormal half-scales, overflow) and around 127.
            b[:, 0] = np.r_[0:21, 118:139, 234:256].astype(np.uint8)
        else:
            # f16 scales: exponents spread over the range, incl. subnormal, inf, NaN.
            h = rng.integers(0, 1 << 16, n).astype(np.uint16)
            h[:8] = [0x0000, 0x8000, 0x0001, 0x83FF, 0x7BFF, 0x7C00, 0xFC00, 0x7E00]
            b[:, 0:2] = h.view(np.uint8).reshape(n, 2)
            if name == "q5_1":
                m = rng.integers(0, 1 << 16, n).astype(np.uint16)
                b[:, 2:4] = m.view(np.uint8).reshape(n, 2)
        flat = b.reshape(-1)
        out[name] = {"blocks": gc.hexs(flat), "dequant": gc.bits(deq(name, flat))}
    return out


def build():
    doc = gc.header("scripts/golden_legacy.py")
    doc.update(cases=[], deviations=[])
    cases = dict(gb.cases())
    cases.update(extra_cases())
    for name, x in cases.items():
        x = np.asarray(x, np.float32)
        entry = {"name": name, "x": gc.bits(x), "blocks": {}}
        for f, b in quant_all(x).items():
            if f in C_REF:
                with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                    b = gc.c_reference_blocks(doc, name, f, b, C_REF[f](x), len(x))
            entry["blocks"][f] = gc.hexs(b)
        doc["cases"].append(entry)
    doc["random_blocks"] = random_blocks()
    doc["stream"] = gc.stream_entry(quant_all)
    return doc


def nmse_report():
    x = np.random.default_rng(0).standard_normal(1 << 20).astype(np.float32)
    for f, b in quant_all(x).items():
        print(f"  {f:12s} NMSE {gc.nmse(x, deq(f, b)):.3e}")


if __name__ == "__main__":
    gc.main(OUT, build, nmse_report, lambda doc: f", {len(doc['cases'])} cases, {len(doc['deviations'])} deviations")
