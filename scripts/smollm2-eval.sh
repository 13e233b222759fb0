# Sourced by scripts/calibration-report.sh and scripts/sparsity-report.sh: the SmolLM2
# source model, the calibration texts (16k tokens of Debian's non-GNU licenses + GFDL-1.3),
# the held-out text (GPL-3) and `ppl FILE` (perplexity at ctx 512 over all 14 chunks, on the
# CPU, which gives the GPU path's numbers several times faster). Expects $OUT and builds a
# copy of the binary there ($W), so that rebuilding during a long run changes nothing.
L=/usr/share/common-licenses
CALIB=()
for f in Apache-2.0 MPL-1.1 MPL-2.0 Artistic CC0-1.0 BSD GFDL-1.3; do
    CALIB+=(--calib-text "$L/$f")
done
HELD=$L/GPL-3
bash scripts/fetch-smollm2.sh >&2
SRC=target/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
cargo build --release --quiet
mkdir -p "$OUT"
cp target/release/wgquant "$OUT/wgquant"
W=$OUT/wgquant

ppl() {
    "$W" perplexity --model "$1" --text "$HELD" --ctx 512 --cpu 2>/dev/null |
        sed -n 's/^Final estimate: PPL = \([0-9.]*\) +\/- \([0-9.]*\)$/\1 \2/p'
}
