"""The Triton backend. On a CUDA GPU it compiles; on a CPU-only machine its kernels
run under the Triton interpreter when TRITON_INTERPRET=1 is set before import (tests
do this), with CPU tensors."""

import importlib.util
import os

import torch

from backends.registry import Backend, register_backend


def interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def _devices():
    if interpreted():
        return ("cpu",)
    return ("cuda",) if torch.cuda.is_available() else ()


def _probe():
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed (pip install 'arsenal[triton]')"
    if not interpreted() and not torch.cuda.is_available():
        return "no CUDA device (set TRITON_INTERPRET=1 to run the kernels on the CPU interpreter)"
    return None


def _synchronize(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


BACKEND = register_backend(Backend(
    name="triton",
    devices=_devices,
    probe=_probe,
    synchronize=_synchronize,
    description="Triton kernels (CUDA, or the CPU interpreter)",
))
