#!/usr/bin/env bash
# The GPU validation's dry run under the lent GPU machines' own software stack, on this CPU:
# Python 3.12, torch 2.11, triton 3.6, numba with numba-cuda and NumPy 2.5, as the H100 and
# H200 image has them (/work/.library/device/KINDS.md: torch 2.11.0+cu130, triton 3.6.0,
# numpy 2.5.2). CI's environment cannot stand for it: its Python is 3.11, for which NumPy
# stops at 2.4; it has triton 3.9; and Numba's built-in CUDA target, not numba-cuda, compiles
# its kernels there. Run before a GPU lease, so that the lease does not find what this can:
# its first run found every numba_cuda kernel failing to compile under numba-cuda 0.30.4
# with NumPy 2.5 (backends/numba_cuda/_numpy_compat.py) and three Triton 3.6 spills that 3.9
# does not make (ACCEPTED_SPILLS in backends/ops/gated_update.py and parallel_scan.py).
#
# Steps: a virtual environment .venv-gpu-stack/ (git-ignored; kept between runs, about
# 4.6 GB: torch 2.11's PyPI wheel is the CUDA build and brings its CUDA libraries, which
# load without a GPU), the carried wheels (.whl/, scripts/fetch_gpu_wheels.sh) when absent,
# then `python -m bench.gpu --dry` with that interpreter into out/gpu-stack-dry/, every step
# but the correctness matrix: Triton 3.6's interpreter fails on NumPy >= 2.4 (README, GPU
# validation), so the matrix under the interpreters stays with CI's stack, where it runs
# in `make gpu-dry` and `make test`. The compile step is the check that matters here: each
# triton and numba_cuda kernel compiled for sm_90 and sm_80 by the GPU machines' compilers.
#
# PYTHON312=/path/to/python3.12 picks the interpreter (default: python3.12 on PATH, else
# pyenv's newest 3.12). Exit status: bench.gpu's (1 if a step failed); 2 when no Python
# 3.12 is found or the environment cannot be built.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv-gpu-stack}
is_312() { [ -n "$1" ] && "$1" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; }
if [ -z "${PYTHON312:-}" ]; then  # a pyenv shim on PATH may not run: each candidate is tried
  for candidate in "$(command -v python3.12 || true)" \
      $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12 2>/dev/null | sort -rV); do
    if is_312 "$candidate"; then PYTHON312=$candidate; break; fi
  done
fi
if ! is_312 "${PYTHON312:-}"; then
  echo "gpu_stack_dry.sh: no Python 3.12 found (set PYTHON312=/path/to/python3.12); the GPU machines' stack needs it" >&2
  exit 2
fi

# The image's versions where a wrong one would hide a difference; the rest as pip resolves.
STACK=(torch==2.11.0 triton==3.6.0 "numpy>=2.5" numba numba-cuda pandas scipy)
STAMP="$VENV/.stack-$(echo "${STACK[*]}" | sha1sum | cut -c1-12)"
if [ ! -f "$STAMP" ]; then
  rm -rf "$VENV"
  "$PYTHON312" -m venv "$VENV" || exit 2
  "$VENV/bin/python" -m pip install --quiet --upgrade pip || exit 2
  "$VENV/bin/python" -m pip install --quiet "${STACK[@]}" || exit 2
  touch "$STAMP"
fi
if ! ls .whl/*.whl >/dev/null 2>&1; then
  PIP="$VENV/bin/python -m pip" scripts/fetch_gpu_wheels.sh >/dev/null || exit 2
fi

STEPS=compile,roofline,ops,drift,overhead,models,report
echo "gpu_stack_dry.sh: $("$VENV/bin/python" -c 'import sys, torch, triton, numpy, numba, numba_cuda
print(f"python {sys.version.split()[0]}, torch {torch.__version__}, triton {triton.__version__}, "
      f"numpy {numpy.__version__}, numba {numba.__version__}, numba-cuda {numba_cuda.__version__}")')"
TRITON_INTERPRET=1 NUMBA_ENABLE_CUDASIM=1 exec "$VENV/bin/python" -m bench.gpu --dry --steps "$STEPS" \
  --out-root out/gpu-stack-dry "$@"
