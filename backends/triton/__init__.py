"""The Triton backend. On a CUDA GPU it compiles; on a CPU-only machine its kernels
run under the Triton interpreter when TRITON_INTERPRET=1 is set before import (tests
do this), with CPU tensors."""

import functools
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


@functools.cache
def _interpreter_problem() -> str | None:
    """Why this Triton's interpreter cannot run the kernels here, or None. Triton 3.6's
    interpreter (the lent GPU machines' version) turns a loop bound given at run time into
    a one-element array and calls ``int`` on it, which NumPy 2.5 refuses ("only
    0-dimensional arrays can be converted to Python scalars"): every kernel with such a
    loop failed under the GPU machines' stack on the CPU (scripts/gpu_stack_dry.sh). A
    kernel with that loop is interpreted once (milliseconds), so the backend is reported
    unavailable with the reason rather than failing each call."""
    import numpy as np
    import triton
    import triton.language as tl

    @triton.jit
    def count(out, n):
        total = 0
        for _ in range(n):
            total += 1
        tl.store(out, total)

    out = torch.zeros(1, dtype=torch.int32)
    try:
        count[(1,)](out, 3)
    except Exception as e:  # the interpreter wraps what it hit in its own error
        return (f"Triton {triton.__version__}'s interpreter cannot run a loop over a run-time bound with NumPy "
                f"{np.__version__} ({e}); to interpret the kernels on the CPU use another triton or NumPy (triton 3.9 with "
                "NumPy 2.4 works)")
    if int(out[0]) != 3:
        return f"Triton {triton.__version__}'s interpreter counted a 3-step loop as {int(out[0])}"
    return None


def _probe():
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed (pip install 'arsenal[triton]')"
    if not interpreted() and not torch.cuda.is_available():
        return "no CUDA device (set TRITON_INTERPRET=1 to run the kernels on the CPU interpreter)"
    if interpreted():
        return _interpreter_problem()
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
