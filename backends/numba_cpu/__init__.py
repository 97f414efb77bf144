"""The Numba CPU SIMD backend: thread-parallel (prange) kernels compiled with
cache=True, cache-packed micro-MLP records, autograd through torch.autograd.Function
with Numba kernels for the backward."""

import importlib.util
from pathlib import Path

from backends.numba_cache import refresh_when_edited
from backends.registry import Backend, register_backend

refresh_when_edited(Path(__file__).parent)  # before any kernel module loads from the cache


def _probe():
    if importlib.util.find_spec("numba") is None:
        return "numba is not installed (pip install 'arsenal[numba]')"
    return None


BACKEND = register_backend(Backend(
    name="numba_cpu",
    devices=lambda: ("cpu",),
    probe=_probe,
    description="Numba CPU SIMD kernels",
))
