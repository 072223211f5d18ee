#!/usr/bin/env bash
# Prepares, once, an arm64 Python 3.11 that qemu-aarch64-static runs on this x86-64 machine, with the edge agent's
# arm64 wheels beside it. Nothing is installed on the host but Debian's qemu-user-static: the arm64 .debs come
# from the host's own Debian sources through a private apt state, and are unpacked into a folder (no chroot, no
# root filesystem image). Idempotent: a finished root is left alone; delete the folder to build it again.
#
#   scripts/arm64-root.sh [ROOT]     (default: $EDGEFLEET_ARM64_ROOT, else ~/.cache/edgefleet/arm64)
#
# Then:  qemu-aarch64-static -L ROOT/sysroot ROOT/sysroot/usr/bin/python3.11   with PYTHONPATH=ROOT/site
# onnxruntime is pinned to 1.19.2: 1.32 (and ai-edge-litert 2.3) segfault under qemu-user 7.2 (DESIGN.md).
set -euo pipefail

ROOT="${1:-${EDGEFLEET_ARM64_ROOT:-$HOME/.cache/edgefleet/arm64}}"
PYTHON="${PYTHON:-python3}"
# the arm64 runtime libraries the interpreter and the wheels load (libstdc++ and libgcc for onnxruntime)
DEBS=(python3.11 libstdc++6 libgcc-s1 libsqlite3-0 libffi8 libssl3 zlib1g)
WHEELS=(onnxruntime==1.19.2 "numpy>=2.0,<2.3" "paho-mqtt>=2.1,<3" "pydantic==2.11.10" "pydantic-settings>=2.14,<3"
        "cryptography>=48" typing-extensions)

if [[ -f "$ROOT/.complete" ]]; then
    echo "arm64 root ready at $ROOT"
    exit 0
fi

command -v qemu-aarch64-static >/dev/null || {
    echo "qemu-aarch64-static is missing: apt-get install qemu-user-static (make debs installs it)" >&2
    exit 2
}

started=$(date +%s)
rm -rf "$ROOT/sysroot" "$ROOT/site"
mkdir -p "$ROOT/apt/state/lists/partial" "$ROOT/apt/cache/archives/partial" "$ROOT/debs" "$ROOT/sysroot" "$ROOT/site"
touch "$ROOT/apt/status"
# a private apt state that sees only arm64: the host's package database and architectures stay as they are
APT=(-o "Dir::State=$ROOT/apt/state" -o "Dir::State::status=$ROOT/apt/status" -o "Dir::Cache=$ROOT/apt/cache"
     -o "APT::Architecture=arm64" -o "APT::Architectures::=arm64" -o "Debug::NoLocking=1")
apt-get "${APT[@]}" -qq update
mapfile -t packages < <(apt-cache "${APT[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts \
    --no-breaks --no-replaces --no-enhances "${DEBS[@]}" | grep '^[a-z0-9]' | sort -u)
(cd "$ROOT/debs" && apt-get "${APT[@]}" -qq download "${packages[@]}")
for deb in "$ROOT"/debs/*.deb; do
    dpkg-deb -x "$deb" "$ROOT/sysroot"
done

"$PYTHON" -m pip install --quiet --disable-pip-version-check --no-warn-conflicts --target "$ROOT/site" --only-binary=:all: \
    --implementation cp --python-version 3.11 --abi cp311 --abi abi3 --abi none \
    --platform manylinux_2_28_aarch64 --platform manylinux_2_17_aarch64 --platform manylinux2014_aarch64 \
    --platform any "${WHEELS[@]}"

touch "$ROOT/.complete"
echo "arm64 root ready at $ROOT ($(( $(date +%s) - started )) s, ${#packages[@]} .debs)"
