"""Arsenal's operator layer: seven op contracts and their interchangeable backends.

    import backends
    backends.OPS["parallel_scan"]                   # OpSpec: reference, shapes, tolerances
    backends.BACKENDS["numba_cpu"].why_unavailable()  # None, or the reason
    fn = backends.get("parallel_scan", "numba_cpu")
    ops = backends.resolve({"default": "torch", "parallel_scan": "numba_cpu"}, device="cpu")
    h = ops.parallel_scan(a, b)
"""

from __future__ import annotations

import importlib

from backends import ops as _ops  # noqa: F401  (registers the op contracts)
from backends.mix import OpTable, resolve
from backends.ops.micro_mlp import init_params as micro_mlp_init_params
from backends.ops.elman_scan import log_tanh_abs, signed_logaddexp, to_log  # elman's per-step path: the contract's pieces
from backends.registry import BACKENDS_REGISTRY as BACKENDS
from backends.registry import IMPLS, OPS_REGISTRY as OPS
from backends.registry import Backend, Impl, OpClock, OpSpec, implements, new_output, op_clock, poison_outputs

# The ordered list of backends. Adding a backend is one folder and one name here.
BACKEND_NAMES = ("torch", "triton", "numba_cuda", "numba_cpu")
for _name in BACKEND_NAMES:
    importlib.import_module(f"backends.{_name}")

OP_NAMES = tuple(OPS)


def get(op: str, backend: str) -> Impl:
    """The checked implementation of ``op`` by ``backend``; raises with the valid choices."""
    if op not in OPS:
        raise ValueError(f"unknown op '{op}'; ops are: {', '.join(OPS)}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend '{backend}' for op '{op}'; backends are: {', '.join(BACKENDS)}")
    b = BACKENDS[backend]
    if op not in b.op_names():
        having = [n for n, bk in BACKENDS.items() if op in bk.op_names()]
        raise ValueError(f"backend '{backend}' does not implement op '{op}'; backends that do: {', '.join(having)}")
    reason = b.why_unavailable()
    if reason is not None:
        ok = [n for n, bk in BACKENDS.items() if op in bk.op_names() and bk.available]
        raise ValueError(f"{op}[{backend}]: backend '{backend}' is unavailable here: {reason}; available: {', '.join(ok)}")
    return b.impl(op)


__all__ = ["micro_mlp_init_params", "signed_logaddexp", "log_tanh_abs", "to_log", "OPS", "BACKENDS", "BACKEND_NAMES",
           "OP_NAMES", "get", "resolve", "OpTable", "OpSpec", "Backend", "Impl", "implements", "new_output", "op_clock",
           "OpClock", "poison_outputs"]
