#!/usr/bin/env bash
# The GPU validation's dry run under the lent GPU machines' own software stack, on this CPU:
# Python 3.12, torch 2.11, triton 3.6, numba with numba-cuda and NumPy 2.5, as the H100 and
# H200 image has them (/work/.library/device/KINDS.md: torch 2.11.0+cu130, triton 3.6.0,
# numpy 2.5.2). CI's environment cannot stand for it: its Python is 3.11, for which NumPy
# stops at 2.4; it has triton 3.9 and torch 2.13; and Numba's built-in CUDA target, not
# numba-cuda, compiles its kernels there. Run before a GPU lease, so that the lease does not
# find what this can. Its first runs found every numba_cuda kernel failing to compile under
# numba-cuda 0.30.4 with NumPy 2.5 (backends/numba_cuda/_numpy_compat.py), three Triton 3.6
# spills that 3.9 does not make (ACCEPTED_SPILLS in backends/ops/gated_update.py and
# parallel_scan.py), and every torch_compile peer failing to compile under torch 2.11 in
# the correctness gate's poisoned context (backends/outputs.py).
#
#   scripts/gpu_stack_dry.sh [--tests] [bench.gpu options]
#
# Steps: a virtual environment .venv-gpu-stack/ (git-ignored; kept between runs, about
# 4.6 GB: torch 2.11's PyPI wheel is the CUDA build and brings its CUDA libraries, which
# load without a GPU) holding the stack and what the image also has for tests (pytest,
# hypothesis, pytest-benchmark, rich, jinja2, einops, pandas, scipy); the carried wheels
# (.whl/, scripts/fetch_gpu_wheels.sh) when absent; then `python -m bench.gpu --dry` with
# that interpreter into out/gpu-stack-dry/, every step but the correctness matrix, whose
# Triton interpreter cannot run under this stack (Triton 3.6's interpreter and NumPy 2.5:
# backends/triton/__init__.py says why; the matrix runs under CI's stack in `make gpu-dry`
# and `make test`). The compile step is the check that matters most: each triton and
# numba_cuda kernel compiled for sm_90 and sm_80 by the compilers the GPU will use.
# --tests then runs README's test command (pytest) with this interpreter, after adding the
# test suite's other packages (plotly, asv, schedulefree, tokenizers, tiktoken, pillow,
# mingru-pytorch), which the image lacks: torch 2.11's torch.compile, numba-cuda's
# simulator and NumPy 2.5 under every test (the triton backend reports itself unavailable
# there, with the reason, and its tests skip).
#
# PYTHON312=/path/to/python3.12 picks the interpreter (default: python3.12 on PATH, else
# pyenv's newest 3.12). Exit status: 0 when every part passed, 1 when a dry-run step or a
# test failed, 2 when no Python 3.12 is found or the environment cannot be built.
set -euo pipefail
cd "$(dirname "$0")/.."

TESTS=0
if [ "${1:-}" = "--tests" ]; then TESTS=1; shift; fi
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
STACK=(torch==2.11.0 triton==3.6.0 "numpy>=2.5" numba numba-cuda pandas scipy
       pytest hypothesis pytest-benchmark rich jinja2 einops)
# What the test suite also needs and the image lacks (mingru-pytorch without its torch).
TEST_EXTRAS=(plotly asv schedulefree tokenizers tiktoken pillow)
stamp() { echo "$VENV/.stack-$(echo "$*" | sha1sum | cut -c1-12)"; }
if [ ! -f "$(stamp "${STACK[@]}")" ]; then
  rm -rf "$VENV"
  "$PYTHON312" -m venv "$VENV" || exit 2
  "$VENV/bin/python" -m pip install --quiet --upgrade pip || exit 2
  "$VENV/bin/python" -m pip install --quiet "${STACK[@]}" || exit 2
  touch "$(stamp "${STACK[@]}")"
fi
if ! ls .whl/*.whl >/dev/null 2>&1; then
  PIP="$VENV/bin/python -m pip" scripts/fetch_gpu_wheels.sh >/dev/null || exit 2
fi

echo "gpu_stack_dry.sh: $("$VENV/bin/python" -c 'import sys, torch, triton, numpy, numba, numba_cuda
print(f"python {sys.version.split()[0]}, torch {torch.__version__}, triton {triton.__version__}, "
      f"numpy {numpy.__version__}, numba {numba.__version__}, numba-cuda {numba_cuda.__version__}")')"
status=0
TRITON_INTERPRET=1 NUMBA_ENABLE_CUDASIM=1 "$VENV/bin/python" -m bench.gpu --dry \
  --steps compile,roofline,ops,drift,overhead,models,report --out-root out/gpu-stack-dry "$@" || status=1

if [ "$TESTS" = 1 ]; then
  if [ ! -f "$(stamp "${STACK[@]}" "${TEST_EXTRAS[@]}")" ]; then
    "$VENV/bin/python" -m pip freeze | grep -iE '^(torch|triton|numpy|numba|numba-cuda)==' > "$VENV/held.txt"
    "$VENV/bin/python" -m pip install --quiet -c "$VENV/held.txt" "${TEST_EXTRAS[@]}" || exit 2
    "$VENV/bin/python" -m pip install --quiet --no-deps mingru-pytorch || exit 2
    touch "$(stamp "${STACK[@]}" "${TEST_EXTRAS[@]}")"
  fi
  echo "gpu_stack_dry.sh: the test suite under this stack"
  "$VENV/bin/python" -m pytest || status=1
fi
exit "$status"
