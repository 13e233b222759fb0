"""What the golden-data scripts (scripts/golden_*.py) share: hex and f32-bit encodings, the
2^20-value "stream" and its FNV-1a 64 hash, ggml's nearest_int and make_qkx2_quants, the
C-reference deviation bookkeeping, the one-line-per-entry JSON layout and the command line
(`--check`, `--nmse`).

Not a script of its own: `import golden_common as gc` from a script in this folder.
"""

import argparse
import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GGUF_VERSION = "0.19.0"

f32 = np.float32


def out_path(name):
    """tests/data/<name>: where a script writes its JSON."""
    return os.path.join(ROOT, "tests", "data", name)


def pkg_version(name):
    from importlib.metadata import version

    return version(name)


# ---------------------------------------------------------------- encodings


def hexs(b):
    """Block bytes (a uint8 array or a list of bytes) as a hex string."""
    return bytes(np.asarray(b, np.uint8)).hex()


def bits(v):
    """f32 values as the list of their bit patterns."""
    return [int(u) for u in np.asarray(v, np.float32).view(np.uint32)]


def f32hex(v):
    """f32 values as the hex of their little-endian bytes (8 digits per value)."""
    return np.asarray(v, np.float32).astype("<f4").tobytes().hex()


# ---------------------------------------------------------------- the stream


# SplitMix64, exactly wgquant::rng::Rng::next_u64: the i-th output (0-based) mixes
# seed + (i + 1) * 0x9E3779B97F4A7C15 (mod 2^64).
def splitmix64(seed, n):
    z = np.uint64(seed) + np.arange(1, n + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


STREAM_SEED, STREAM_VALUES = 0x5EED_B10C, 1 << 20


def stream(seed, n):
    """Value i: (sum of the four 16-bit fields of u_i - 131070) / 2^15 (an Irwin-Hall
    near-normal, exact in f32), times 2^e with e = (7 * block) % 52 - 34 per 32-block
    (magnitudes 2^-34 .. 2^17, from f16-subnormal scales to f16 overflow); every 13th block
    is zero and every 17th constant (its first value). All exact in f32."""
    u = splitmix64(seed, n)
    s = sum(((u >> np.uint64(16 * i)) & np.uint64(0xFFFF)).astype(np.int64) for i in range(4))
    v = (s - 131070).astype(np.float32) * np.float32(2.0**-15)
    blk = np.arange(n) // 32
    e = (7 * blk) % 52 - 34
    v = v * np.exp2(e).astype(np.float32)
    v = v.reshape(-1, 32)
    v[::13] = 0
    v[::17] = v[::17, :1]
    return v.reshape(-1)


def fnv1a64(b):
    h = 0xCBF29CE484222325
    for x in b.tobytes():
        h = ((h ^ x) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def stream_entry(hash_blocks):
    """The document's "stream": the seed, the length, and the FNV-1a 64 hash of the block
    bytes per format (`hash_blocks(x)` gives {format: block bytes})."""
    x = stream(STREAM_SEED, STREAM_VALUES)
    hashes = {f: fnv1a64(b) for f, b in hash_blocks(x).items()}
    return {"seed": STREAM_SEED, "values": STREAM_VALUES, "fnv1a64": hashes}


# ---------------------------------------------------------------- ggml's C, ported


def nearest_int(v):
    """ggml's nearest_int: add 1.5 * 2^23 in f32, read the low mantissa bits (ties to even)."""
    with np.errstate(over="ignore", invalid="ignore"):
        s = np.array([f32(v) + f32(12582912.0)], np.float32)
    i = int(s.view(np.int32)[0])
    return (i & 0x007FFFFF) - 0x00400000


def make_qkx2_quants(x, w, nmax, rmin, rdelta, nstep, use_mad):
    """ggml's make_qkx2_quants (ggml-quants.c) on the f32 values `x` with error weights `w`,
    in f32 arithmetic statement by statement: (scale, the_min, L). The error is
    `w |diff|` with `use_mad`, else `w diff^2`."""
    n = len(x)
    mn, mx = x[0], x[0]
    sum_w = w[0]
    sum_x = sum_w * x[0]
    for i in range(1, n):
        if x[i] < mn:
            mn = x[i]
        if x[i] > mx:
            mx = x[i]
        sum_w = sum_w + w[i]
        sum_x = sum_x + w[i] * x[i]
    if mn > 0:
        mn = f32(0)
    if mx == mn:
        return f32(0), -mn, [0] * n

    def q(iscale, v, m):
        return max(0, min(nmax, nearest_int(iscale * (v - m))))

    def err(diff):
        return abs(diff) if use_mad else diff * diff

    iscale = f32(nmax) / (mx - mn)
    scale = f32(1) / iscale
    L = [q(iscale, v, mn) for v in x]
    best = f32(0)
    for i in range(n):
        best = best + w[i] * err(scale * f32(L[i]) + mn - x[i])
    for s in range(nstep + 1):
        iscale = (f32(rmin) + f32(rdelta) * f32(s) + f32(nmax)) / (mx - mn)
        aux = [q(iscale, v, mn) for v in x]
        sum_l, sum_l2, sum_xl = f32(0), f32(0), f32(0)
        for i in range(n):
            wl = w[i] * f32(aux[i])
            sum_l = sum_l + wl
            sum_l2 = sum_l2 + wl * f32(aux[i])
            sum_xl = sum_xl + wl * x[i]
        D = sum_w * sum_l2 - sum_l * sum_l
        if D > 0:
            this_scale = (sum_w * sum_xl - sum_x * sum_l) / D
            this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D
            if this_min > 0:
                this_min = f32(0)
                this_scale = sum_xl / sum_l2
            cur = f32(0)
            for i in range(n):
                cur = cur + w[i] * err(this_scale * f32(aux[i]) + this_min - x[i])
            if cur < best:
                L, best, scale, mn = aux, cur, this_scale, this_min
    return scale, -mn, L


def c_reference_blocks(doc, case, fmt, py, c, n):
    """ggml's C reference bytes `c` for `n` values of `case`, checked block by block against
    gguf-py's `py`: every block where they differ goes to doc["deviations"]. Returns `c`."""
    bb = len(py) // (n // 32)
    for i, (pb, cb) in enumerate(zip(py.reshape(-1, bb), c.reshape(-1, bb))):
        if (pb != cb).any():
            doc["deviations"].append({"case": case, "format": fmt, "block": i, "gguf_py": hexs(pb), "ggml_c": hexs(cb)})
    return c


# ---------------------------------------------------------------- output


def nmse(x, d):
    """sum((d - x)^2) / sum(x^2), in f64."""
    return np.sum((d.astype(np.float64) - x) ** 2) / np.sum(x.astype(np.float64) ** 2)


def header(generator):
    """The keys every document starts with."""
    return {
        "generator": generator,
        "gguf_version": pkg_version("gguf"),
        "numpy_version": np.__version__,
    }


def dump(doc):
    """JSON with one top-level key, and one list entry, per line (readable diffs)."""
    compact = lambda v: json.dumps(v, separators=(",", ":"))
    items = []
    for k, v in doc.items():
        if isinstance(v, list):
            body = ",\n".join("  " + compact(e) for e in v)
            items.append(f" {compact(k)}: [\n{body}\n ]" if v else f" {compact(k)}: []")
        else:
            items.append(f" {compact(k)}: {compact(v)}")
    return "{\n" + ",\n".join(items) + "\n}\n"


def main(out, build, nmse_report, summary=lambda doc: ""):
    """The scripts' command line: write `out` from `build()` (or with --check only compare),
    and with --nmse also run `nmse_report()`. `summary(doc)` adds to the "wrote" line."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true", help="compare with the committed file")
    ap.add_argument("--nmse", action="store_true", help="also print NMSE per format")
    args = ap.parse_args()
    version = pkg_version("gguf")
    if version != GGUF_VERSION:
        print(f"warning: gguf {version}, the committed file was made with {GGUF_VERSION}", file=sys.stderr)
    doc = build()
    text = dump(doc)
    if args.nmse:
        nmse_report()
    name = os.path.basename(out)
    if args.check:
        with open(out) as f:
            same = f.read() == text
        print(f"{name} is up to date" if same else f"{name} differs")
        sys.exit(0 if same else 1)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        f.write(text)
    print(f"wrote {out} ({len(text)} bytes{summary(doc)})")
