"""numba-cuda against NumPy 2.5: the array module's import, with NumPy's removed alias.

numba-cuda up to 0.30.4 (the newest release on PyPI in December 2026) registers an
overload for ``np.row_stack`` whenever NumPy is 2.0 or newer, in
``numba.cuda.np.arrayobj``, which it imports at the first kernel compile. NumPy 2.5
removed that alias of ``np.vstack``, so on a GPU machine with NumPy 2.5 (the lent H100 and
H200 image has 2.5.2) every numba_cuda kernel failed to compile with ``AttributeError:
module 'numpy' has no attribute 'row_stack'``: seen by compiling them for sm_90 with
numba-cuda 0.30.4, NumPy 2.5.5, torch 2.11 and triton 3.6 on Python 3.12
(``scripts/gpu_stack_dry.sh``). Numba's own CPU module guards the same line
(``numpy_version < (2, 5)``).

``load_numba_cuda_arrays`` imports that module once, with the alias present only for the
import, so NumPy is left as it was. Nothing here runs where the alias exists (NumPy < 2.5)
or where Numba's built-in CUDA target is used instead of numba-cuda (no such module).
"""

import importlib
import importlib.util

import numpy as np


def load_numba_cuda_arrays() -> None:
    if hasattr(np, "row_stack") or importlib.util.find_spec("numba_cuda") is None:
        return
    np.row_stack = np.vstack
    try:
        importlib.import_module("numba.cuda.np.arrayobj")
    finally:
        del np.row_stack
