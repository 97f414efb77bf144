"""The operator registry: contracts (OpSpec), backends (Backend) and implementations.

Vocabulary: an *op* is one of the eight contracts in ``backends/ops/<op>.py``; a
*backend* is a folder ``backends/<backend>/`` with one file per op it implements. The
file name, the function name and the registry key are all the op name, and the
``@implements`` decorator checks that, plus the signature against the reference, at
import time.

What an op is reads here; the generated argument checks are backends/arguments.py, the
profiler and clock spans of every call backends/spans.py, the poisoned allocations of the
correctness check backends/outputs.py.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import inspect
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import torch
import torch.autograd.profiler as _autograd_profiler
from torch.autograd.profiler import record_function

from backends.arguments import CPU, ArgPlan, ContractError, TensorArg  # noqa: F401  (TensorArg: the contracts' argument specs)
from backends.dtypes import DTYPE_NAMES, DTYPES_BY_NAME, FLOAT_DTYPES  # noqa: F401
from backends.outputs import new_output, new_output_like, poison_outputs  # noqa: F401  (the backends allocate through these)
from backends.spans import _CLOCK, OpClock, _backward_range, _BackwardSpan, nvtx_range, op_clock  # noqa: F401  (re-exported)

MODES = ("forward", "backward", "forward_backward")


# ---------------------------------------------------------------------------
# Contracts
# ---------------------------------------------------------------------------


def no_options(backend, sizes, **options) -> None:
    """check_options for ops whose only arguments are tensors (a call skips it)."""


@dataclass(frozen=True)
class Tolerance:
    """Allowed error against the float64 reference: |got - ref| <= atol + rtol * |ref|."""

    rtol: float
    atol: float


@dataclass(frozen=True)
class OpSpec:
    """Everything the harness and the tests need to know about one op."""

    name: str
    reference: Callable  # plain sequential float64 reference, differentiable by autograd
    args: Mapping[str, TensorArg | Mapping[str, TensorArg]]  # tensor arguments (a dict: a tuple of them)
    check_options: Callable[..., None]  # (backend, **non_tensor_args) -> raises on bad options
    make_inputs: Callable[..., dict]  # (case, dtype, device, seed) -> kwargs for the op
    outputs: tuple[str, ...]  # names of the returned tensors
    differentiable_inputs: tuple[str, ...]
    differentiable_outputs: tuple[str, ...]
    test_cases: tuple[dict, ...]  # small cases for the correctness matrix
    case_space: Mapping[str, Sequence]  # hypothesis: dims -> range(lo, hi + 1); options -> list of choices
    tolerances: Mapping[torch.dtype, tuple[Tolerance, Tolerance]]  # dtype -> (forward, gradient)
    flops: Callable[..., float]  # (case, mode) -> floating-point operations
    bytes: Callable[..., float]  # (case, dtype, mode) -> bytes that must move (compulsory traffic)
    compare: Callable[..., tuple[float, list[str]]] | None = None  # op-specific output comparison
    # (inputs, ref outputs) -> {output: bool mask} of elements whose gradient is well
    # conditioned enough to check; None checks every element
    grad_mask: Callable[..., dict] | None = None
    doc: str = ""

    @functools.cached_property
    def signature(self) -> inspect.Signature:
        return inspect.signature(self.reference)

    @functools.cached_property
    def plan(self) -> ArgPlan:
        """The argument checks, compiled once (``register_op`` builds it)."""
        return ArgPlan(self.name, self.signature, self.args)

    def validate(self, backend: str, args: tuple, kwargs: dict) -> tuple[list, dict, torch.dtype, torch.device]:
        """Bind and check a call; return (its values in signature order, the bound sizes
        {"B": 2, ...}, the first argument's dtype and device). Raises TypeError or
        ValueError naming the op, the backend, the argument, what was expected and what
        was given."""
        values, slots, dtype, device = self.accept(backend, args, kwargs)
        return values, self.plan.sizes(slots), dtype, device

    def accept(self, backend: str, args: tuple, kwargs: dict) -> tuple[list, list, torch.dtype, torch.device]:
        """``validate`` as every op call runs it: the sizes as slots, named (a dict) only
        for an op with options to check. Each call frame and object it saves counts
        several times over between kernels, where the interpreter's data is out of
        cache (scripts/scan_vs_add.py)."""
        plan = self.plan
        values = plan.bind(args, kwargs)
        slots, dtype, device = plan.check(backend, values)
        if self.check_options is not no_options:
            sizes = plan.sizes(slots)
            if plan.options:
                self.check_options(backend, sizes=sizes, **{name: values[i] for name, i in plan.options})
            else:
                self.check_options(backend, sizes=sizes)
        return values, slots, dtype, device

    def check(self, backend: str, *args, **kwargs) -> dict:
        """Validate a call's arguments; return {"sizes": ..., "dtype": ..., "device": ...}."""
        _, sizes, dtype, device = self.validate(backend, args, kwargs)
        return {"sizes": sizes, "dtype": dtype, "device": device}


# ---------------------------------------------------------------------------
# Backends and implementations
# ---------------------------------------------------------------------------


@dataclass
class Impl:
    """One backend's implementation of one op; calling it validates, then runs.

    Every call shows in torch.profiler as a range ``op/backend/forward`` and, when it
    records a graph, its backward as ``op/backend/backward`` (``_backward_range``); on
    CUDA the forward is also an nvtx range (under ``torch.autograd.profiler.emit_nvtx``
    both ranges reach Nsight). Under ``op_clock()`` the same two spans are timed instead.
    With neither running, this costs two flag tests."""

    op: str
    backend: str
    fn: Callable  # the raw implementation (no argument checking)
    dtypes: tuple[torch.dtype, ...]
    grad: bool  # False: this backend has no backward for the op yet
    notes: str = ""

    def __post_init__(self):
        self._spec = OPS_REGISTRY[self.op]
        self._forward_name = f"{self.op}/{self.backend}/forward"
        self._backward_name = f"{self.op}/{self.backend}/backward"

    def __call__(self, *args, **kwargs):
        values, _, dtype, device = self._spec.accept(self.backend, args, kwargs)
        if dtype not in self.dtypes:
            names = ", ".join(DTYPE_NAMES[d] for d in self.dtypes)
            raise TypeError(f"{self.op}[{self.backend}]: tensors expected dtype in ({names}), got {DTYPE_NAMES.get(dtype, dtype)}")
        kind = "cpu" if device is CPU else device.type  # a CPU call's device is the one CPU object
        backend = BACKENDS_REGISTRY[self.backend]
        if not backend.runs_on(kind):
            raise ValueError(f"{self.op}[{self.backend}]: tensors expected on device {' or '.join(backend.devices())}, got {device}")
        if _autograd_profiler._is_profiler_enabled or _CLOCK[0] is not None:
            return self._profiled(values, kind == "cuda")
        if kind != "cuda":
            return self.fn(*args, **kwargs)
        with nvtx_range(self._forward_name):
            return self.fn(*args, **kwargs)

    def _profiled(self, values: list, cuda: bool):
        """The call inside its forward range, its backward inside a backward range (ranges
        for torch.profiler while it runs; wall time for the ``op_clock`` while it runs)."""
        clock = _CLOCK[0]
        ranges = _autograd_profiler._is_profiler_enabled
        fwd = record_function(self._forward_name) if ranges else contextlib.nullcontext()
        nvtx = nvtx_range(self._forward_name) if cuda else contextlib.nullcontext()
        call = self.fn if clock is None else clock.timed(self.fn, self._forward_name)
        with fwd, nvtx:
            if torch.is_grad_enabled():
                span = _BackwardSpan(self._backward_name, ranges, clock)
                return _backward_range(span, call, values, self._spec.plan.entries)
            return call(*values)


@dataclass
class Backend:
    """A backend: one folder of op files, a probe and a synchronize function."""

    name: str
    devices: Callable[[], tuple[str, ...]]  # device types it runs on here ("cpu", "cuda")
    probe: Callable[[], str | None]  # None, or why this backend cannot run here
    synchronize: Callable[[torch.device], None] = lambda device: None
    description: str = ""

    # device type -> whether it is in devices(): decided at import (CUDA present, the
    # interpreter variables), asked on every call
    _runs_on: dict = field(default_factory=dict, repr=False, compare=False)

    def why_unavailable(self) -> str | None:
        return self.probe()

    def runs_on(self, device_type: str) -> bool:
        """``device_type in self.devices()``, cached per device type."""
        ok = self._runs_on.get(device_type)
        if ok is None:
            ok = self._runs_on[device_type] = device_type in self.devices()
        return ok

    @property
    def available(self) -> bool:
        return self.probe() is None

    def op_names(self) -> tuple[str, ...]:
        """Ops this backend has a file for (whether or not it can run here)."""
        return tuple(op for op in OPS_REGISTRY if importlib.util.find_spec(f"backends.{self.name}.{op}") is not None)

    def impl(self, op: str) -> "Impl":
        """Import backends/<backend>/<op>.py (its signature check runs) and return the
        Impl; the backend must be available and have the file."""
        reason = self.why_unavailable()
        if reason is not None:
            raise RuntimeError(f"backend '{self.name}' is unavailable: {reason}")
        importlib.import_module(f"backends.{self.name}.{op}")
        if (op, self.name) not in IMPLS:
            raise ContractError(f"backends/{self.name}/{op}.py defines no @implements('{op}') function")
        return IMPLS[(op, self.name)]


OPS_REGISTRY: dict[str, OpSpec] = {}
BACKENDS_REGISTRY: dict[str, Backend] = {}
IMPLS: dict[tuple[str, str], Impl] = {}


def register_op(spec: OpSpec) -> OpSpec:
    spec.plan  # compiled now: a contract whose arguments cannot be checked fails at import
    OPS_REGISTRY[spec.name] = spec
    return spec


def register_backend(backend: Backend) -> Backend:
    BACKENDS_REGISTRY[backend.name] = backend
    return backend


def _signature_key(sig: inspect.Signature):
    return [(p.name, p.kind, p.default) for p in sig.parameters.values()]


def implements(op: str, *, dtypes: Sequence[torch.dtype] = (torch.float32,), grad: bool = True, notes: str = ""):
    """Register the decorated function as its backend's implementation of ``op``.

    The backend is the package the function lives in (``backends/<backend>/<op>.py``);
    the function's name, its file's name and ``op`` must agree, and its signature must
    equal the reference's (names, order, kinds and defaults).
    """

    def deco(fn):
        if op not in OPS_REGISTRY:
            raise ContractError(f"@implements('{op}'): unknown op; ops are {', '.join(OPS_REGISTRY)}")
        parts = fn.__module__.split(".")
        if len(parts) != 3 or parts[0] != "backends" or parts[2] != op:
            raise ContractError(f"@implements('{op}') on {fn.__module__}.{fn.__name__}: must live in backends/<backend>/{op}.py")
        if fn.__name__ != op:
            raise ContractError(f"@implements('{op}') on {fn.__module__}.{fn.__name__}: the function must be named '{op}'")
        want, got = OPS_REGISTRY[op].signature, inspect.signature(fn)
        if _signature_key(want) != _signature_key(got):
            raise ContractError(f"{fn.__module__}.{op}{got} does not match the contract {op}{want}")
        for d in dtypes:
            if d not in FLOAT_DTYPES:
                raise ContractError(f"@implements('{op}'): dtype {d} is not one of {FLOAT_DTYPES}")
        impl = Impl(op=op, backend=parts[1], fn=fn, dtypes=tuple(dtypes), grad=grad, notes=notes)
        functools.update_wrapper(impl, fn)
        IMPLS[(op, parts[1])] = impl
        return fn

    return deco
