#!/usr/bin/env bash
# Downloads into .whl/ (git-ignored) the wheels that `make gpu` needs and a GPU machine may
# lack, for that machine's Python 3.12 on x86-64 Linux. Run it here, where a package
# registry is reachable; carry .whl/ to the GPU machine with the repository.
#
# torch, triton and the nvidia-* CUDA libraries are never fetched: the GPU machine's own
# are the ones under test. The packages that would pull torch are fetched with --no-deps
# and their other needs are named explicitly (einops; fla-core needs nothing else;
# flash-linear-attention's models need transformers, which the peer never imports).
# pandas, numpy and scipy are left out by default (about 30 MB of the 64 MiB a device
# call carries, and GPU images have them): EXTRA="pandas scipy" adds them.
# bench/gpu.py installs only the carried wheels that the GPU machine's Python lacks.
set -euo pipefail
cd "$(dirname "$0")/.."

PIP=${PIP:-python3 -m pip}
DEST=${DEST:-.whl}
TARGET=(--only-binary=:all: --python-version 3.12 --implementation cp
        --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64)

# Each package once: two versions of one package in DEST stop the install there.
mkdir -p "$DEST"
rm -f "$DEST"/*.whl

# Pure dependencies resolved by pip: the test stack, the console and the report.
$PIP download "${TARGET[@]}" --dest "$DEST" \
    pytest hypothesis pytest-benchmark rich plotly jinja2 einops ${EXTRA:-}

# The GPU peers (and minGRU, a CPU peer), which declare torch: without their dependencies.
$PIP download "${TARGET[@]}" --no-deps --dest "$DEST" \
    accelerated-scan flash-linear-attention fla-core mingru-pytorch

ls -1 "$DEST"
du -sh "$DEST"
