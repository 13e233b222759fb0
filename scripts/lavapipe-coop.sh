#!/usr/bin/env bash
# Run the kernel-variant tests and `wgquant verify` (every format), the tensor-core GEMM
# (cooperative matrices) included, on a lavapipe new enough to have cooperative matrices
# (Mesa 25.1 or later: 8x8x8 fragments on subgroups of 8). Debian 12's Mesa 22.3 has none,
# so this builds a minimal Debian 13 root with trixie-backports' Mesa once, builds the test
# binaries here, and runs them inside that root (chroot). Needs root, debootstrap (installed
# with apt where missing) and network access to deb.debian.org. About 1.5 minutes to set up
# the first time, then the runs (kernels_variants and verify: about 3 minutes each on 2
# cores with a cold shader cache).
#
#   bash scripts/lavapipe-coop.sh            # set up if needed, build, run the tests
#   WGQUANT_COOP_ROOT=/some/dir bash ...     # where the Debian 13 root lives
#                                            # (default /var/tmp/wgquant-trixie)
#
# It exits non-zero if the root's lavapipe offers no cooperative matrices (the tests would
# then skip the kernel and prove nothing), or if a test fails. With
# WGQUANT_COOP_OPTIONAL=1 (CI), a machine that cannot set up the root (not root, no
# network, no chroot or bind mounts) skips the run with a message instead; failing tests
# still fail.
set -euo pipefail

root="${WGQUANT_COOP_ROOT:-/var/tmp/wgquant-trixie}"
repo="$(cd "$(dirname "$0")/.." && pwd)"

# Setup trouble: fatal, or a skip where WGQUANT_COOP_OPTIONAL=1.
cannot() {
    if [ "${WGQUANT_COOP_OPTIONAL:-0}" = 1 ]; then
        echo "lavapipe-coop.sh: SKIPPED, $1" >&2
        exit 0
    fi
    echo "lavapipe-coop.sh: $1" >&2
    exit 2
}

[ "$(id -u)" = 0 ] || cannot "needs root (debootstrap and chroot)"

if [ ! -e "$root/.wgquant-ready" ]; then
    if ! command -v debootstrap >/dev/null; then
        # A fresh machine may have no package lists yet.
        { apt-get install -y debootstrap >/dev/null 2>&1 ||
            { apt-get update -qq && apt-get install -y debootstrap >/dev/null; }; } ||
            cannot "could not install debootstrap"
    fi
    echo "setting up a Debian 13 root with trixie-backports' Mesa in $root ..."
    rm -rf "$root"
    debootstrap --variant=minbase trixie "$root" http://deb.debian.org/debian >/dev/null ||
        cannot "debootstrap of Debian 13 failed"
    echo "deb http://deb.debian.org/debian trixie-backports main" \
        >"$root/etc/apt/sources.list.d/backports.list"
    { chroot "$root" apt-get update -qq &&
        chroot "$root" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq -t trixie-backports mesa-vulkan-drivers >/dev/null; } ||
        cannot "installing trixie-backports' Mesa failed"
    touch "$root/.wgquant-ready"
fi

mounted=()
cleanup() {
    for m in "${mounted[@]}"; do umount "$m" 2>/dev/null || true; done
}
trap cleanup EXIT
for d in proc sys dev; do
    if ! mountpoint -q "$root/$d"; then
        mount --bind "/$d" "$root/$d" || cannot "cannot bind-mount /$d into $root"
        mounted+=("$root/$d")
    fi
done

cd "$repo"
cargo build --release --quiet
# The test binary cargo builds (its JSON lines name each artifact's executable).
bins=$(cargo test --release --no-run --message-format=json --test kernels_variants 2>/dev/null |
    grep -o '"executable":"[^"]*/kernels_variants-[^"]*"' | cut -d'"' -f4)
[ -n "$bins" ] || { echo "lavapipe-coop.sh: no kernels_variants test binary" >&2; exit 1; }
mkdir -p "$root/wgquant"
cp target/release/wgquant "$root/wgquant/"
for b in $bins; do cp "$b" "$root/wgquant/"; done

adapters=$(chroot "$root" /wgquant/wgquant adapters)
echo "$adapters" | sed -n '1,12p'
if ! echo "$adapters" | grep -q "tensor-core GEMM: yes"; then
    echo "lavapipe-coop.sh: this lavapipe cannot run the tensor-core GEMM" >&2
    exit 1
fi
for b in $bins; do
    name=$(basename "$b")
    echo "== $name"
    chroot "$root" env MESA_SHADER_CACHE_DIR=/tmp/mesa-cache "/wgquant/$name"
done
# Every format: verify adds the tensor-core GEMM's cases where the default leaves it out.
echo "== wgquant verify"
if ! chroot "$root" env MESA_SHADER_CACHE_DIR=/tmp/mesa-cache /wgquant/wgquant verify \
    >"$root/verify.txt"; then
    grep FAIL "$root/verify.txt" >&2 || true
    tail -1 "$root/verify.txt" >&2
    exit 1
fi
coop_cases=$(grep -c "gemm_coop .* pass" "$root/verify.txt" || true)
echo "$(tail -1 "$root/verify.txt"), of them $coop_cases tensor-core GEMM cases"
if [ "$coop_cases" = 0 ]; then
    echo "lavapipe-coop.sh: verify ran no tensor-core GEMM case" >&2
    exit 1
fi
