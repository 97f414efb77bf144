"""The Numba CPU SIMD backend: thread-parallel (prange) kernels compiled with
cache=True, cache-packed micro-MLP records, autograd through torch.autograd.Function
with Numba kernels for the backward."""

import importlib.util

from backends.registry import Backend, register_backend


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
