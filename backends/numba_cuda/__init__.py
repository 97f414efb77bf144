"""The Numba CUDA backend. On a CPU-only machine its kernels run in Numba's CUDA
simulator when NUMBA_ENABLE_CUDASIM=1 is set before import (tests do this)."""

import importlib.util
import os
from pathlib import Path

import torch

from backends.numba_cache import refresh_when_edited
from backends.registry import Backend, register_backend

refresh_when_edited(Path(__file__).parent)  # before any kernel module loads from the cache


def simulated() -> bool:
    return os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def _devices():
    if simulated():
        return ("cpu",)
    return ("cuda",) if torch.cuda.is_available() else ()


def _probe():
    if importlib.util.find_spec("numba") is None:
        return "numba is not installed (pip install 'arsenal[numba]')"
    if simulated():
        return None
    if not torch.cuda.is_available():
        return "no CUDA device (set NUMBA_ENABLE_CUDASIM=1 to run the kernels in the CUDA simulator)"
    if importlib.util.find_spec("numba_cuda") is None:
        return "numba-cuda is not installed (pip install 'arsenal[numba]')"
    return None


def _synchronize(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


BACKEND = register_backend(Backend(
    name="numba_cuda",
    devices=_devices,
    probe=_probe,
    synchronize=_synchronize,
    description="Numba CUDA kernels (GPU, or the CUDA simulator)",
))
