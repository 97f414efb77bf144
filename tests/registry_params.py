"""Test parameters enumerated from the registry (never hand-written lists), and the
availability gate: an unavailable backend is a skip with its reason, or a failure
under --strict-backends (ARSENAL_STRICT=1) on machines that should have it."""

from __future__ import annotations

import pytest
import torch

import backends
from backends.registry import DTYPE_NAMES, IMPLS

DTYPES = (torch.float64, torch.float32, torch.bfloat16)


def case_id(case: dict) -> str:
    return "-".join(f"{k}{v}" for k, v in case.items())


def op_backend_params():
    """(op, backend) for every backend that has a file for the op."""
    return [pytest.param(op, name, id=f"{op}-{name}")
            for op in backends.OPS for name, b in backends.BACKENDS.items() if op in b.op_names()]


def case_params():
    """(op, backend, case, dtype) over every op's test cases and all three dtypes."""
    return [pytest.param(op, name, case, dtype, id=f"{op}-{name}-{case_id(case)}-{DTYPE_NAMES[dtype]}")
            for op in backends.OPS for name, b in backends.BACKENDS.items() if op in b.op_names()
            for case in backends.OPS[op].test_cases for dtype in DTYPES]


def coverage_gap_params():
    """(op, backend) pairs with no implementation file: reported as skips (pytest -rs)."""
    return [pytest.param(op, name, id=f"{op}-{name}")
            for op in backends.OPS for name, b in backends.BACKENDS.items() if op not in b.op_names()]


def require(request, op: str, backend: str, dtype: torch.dtype | None = None):
    """Skip (or fail in strict mode) when the pair cannot run here; return the Impl."""
    reason = backends.BACKENDS[backend].why_unavailable()
    if reason is not None:
        if request.config.getoption("--strict-backends"):
            pytest.fail(f"{op}[{backend}] unavailable in strict mode: {reason}")
        pytest.skip(f"{backend} unavailable: {reason}")
    impl = backends.get(op, backend)
    if dtype is not None and dtype not in impl.dtypes:
        pytest.skip(f"{op}[{backend}] does not take {DTYPE_NAMES[dtype]} "
                    f"(takes {', '.join(DTYPE_NAMES[d] for d in impl.dtypes)})")
    return impl


def device_for(backend: str) -> str:
    """The device this backend runs on here (cuda when it can, else cpu)."""
    devices = backends.BACKENDS[backend].devices()
    return "cuda" if "cuda" in devices else "cpu"


def is_emulated(backend: str) -> bool:
    """Triton's interpreter and Numba's CUDA simulator run kernels in Python: slow."""
    import os

    return (backend == "triton" and os.environ.get("TRITON_INTERPRET") == "1") or \
           (backend == "numba_cuda" and os.environ.get("NUMBA_ENABLE_CUDASIM") == "1")


def has_grad(op: str, backend: str) -> bool:
    return IMPLS[(op, backend)].grad
