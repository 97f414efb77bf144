"""The operator registry: contracts (OpSpec), backends (Backend) and implementations.

Vocabulary: an *op* is one of the seven contracts in ``backends/ops/<op>.py``; a
*backend* is a folder ``backends/<backend>/`` with one file per op it implements. The
file name, the function name and the registry key are all the op name, and the
``@implements`` decorator checks that, plus the signature against the reference, at
import time.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import inspect
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import torch

FLOAT_DTYPES = (torch.float64, torch.float32, torch.bfloat16)
DTYPE_NAMES = {torch.float64: "float64", torch.float32: "float32", torch.bfloat16: "bfloat16"}
DTYPES_BY_NAME = {v: k for k, v in DTYPE_NAMES.items()}
MODES = ("forward", "backward", "forward_backward")


class ContractError(TypeError):
    """An implementation does not match its op's contract (raised at import time)."""


# ---------------------------------------------------------------------------
# Argument checking, shared by every backend through the @implements wrapper.
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TensorArg:
    """A tensor argument: ``dims`` names each axis ("B T D"; a number fixes a size;
    a leading "..." accepts any number of batch axes). ``kind`` is "float" (shares the
    dtype of the op's first float tensor) or "bool"."""

    dims: str
    optional: bool = False
    kind: str = "float"


def _fail(exc, op, backend, arg, expected, given):
    return exc(f"{op}[{backend}]: argument '{arg}' expected {expected}, got {given}")


def _flatten_pairs(op, backend, args, values):
    """A tuple argument (banked_attention's state=(S, z)) is declared as a dict of
    TensorArgs; flatten it to "state.S", "state.z" (both optional when it is None)."""
    flat_args, flat_values = {}, dict(values)
    for name, spec in args.items():
        if not isinstance(spec, Mapping):
            flat_args[name] = spec
            continue
        v = values.get(name)
        if v is not None and (not isinstance(v, (tuple, list)) or len(v) != len(spec)):
            raise _fail(TypeError, op, backend, name, f"None or a tuple ({', '.join(spec)})", type(v).__name__)
        for i, (sub, sub_spec) in enumerate(spec.items()):
            flat_args[f"{name}.{sub}"] = TensorArg(sub_spec.dims, optional=v is None, kind=sub_spec.kind)
            flat_values[f"{name}.{sub}"] = None if v is None else v[i]
    return flat_args, flat_values


def check_tensors(op: str, backend: str, args: Mapping[str, TensorArg], values: Mapping[str, Any]) -> dict:
    """Check ranks, sizes, dtypes and devices; return the bound sizes {"B": 2, ...}."""
    args, values = _flatten_pairs(op, backend, args, values)
    sizes: dict[str, int] = {}
    where: dict[str, str] = {}
    float_dtype = device = None
    first_float = first_device = None
    for name, spec in args.items():
        t = values.get(name)
        if t is None:
            if spec.optional:
                continue
            raise _fail(TypeError, op, backend, name, "a torch.Tensor", "None")
        if not isinstance(t, torch.Tensor):
            raise _fail(TypeError, op, backend, name, "a torch.Tensor", type(t).__name__)
        if spec.kind == "float":
            if t.dtype not in FLOAT_DTYPES:
                raise _fail(TypeError, op, backend, name, "a float64, float32 or bfloat16 tensor", f"dtype {t.dtype}")
            if float_dtype is None:
                float_dtype, first_float = t.dtype, name
            elif t.dtype != float_dtype:
                raise _fail(TypeError, op, backend, name, f"dtype {float_dtype} (the dtype of '{first_float}')", f"dtype {t.dtype}")
        elif spec.kind == "bool" and t.dtype != torch.bool:
            raise _fail(TypeError, op, backend, name, "a bool tensor", f"dtype {t.dtype}")
        if device is None:
            device, first_device = t.device, name
        elif t.device != device:
            raise _fail(ValueError, op, backend, name, f"device {device} (the device of '{first_device}')", f"device {t.device}")
        dims = spec.dims.split()
        if dims and dims[0] == "...":
            dims = dims[1:]
            if t.dim() < len(dims):
                raise _fail(ValueError, op, backend, name, f"at least {len(dims)} dims [..., {', '.join(dims)}]", f"shape {tuple(t.shape)}")
            shape = t.shape[t.dim() - len(dims):]
        else:
            if t.dim() != len(dims):
                raise _fail(ValueError, op, backend, name, f"{len(dims)} dims [{', '.join(dims)}]", f"shape {tuple(t.shape)}")
            shape = t.shape
        for dim, size in zip(dims, shape):
            if dim.isdigit():
                if size != int(dim):
                    raise _fail(ValueError, op, backend, name, f"[{', '.join(dims)}] with {dim} fixed", f"shape {tuple(t.shape)}")
            elif dim in sizes and sizes[dim] != size:
                raise _fail(ValueError, op, backend, name, f"{dim} = {sizes[dim]} (from '{where[dim]}')", f"{dim} = {size} in shape {tuple(t.shape)}")
            else:
                sizes.setdefault(dim, size)
                where.setdefault(dim, name)
    return sizes


# ---------------------------------------------------------------------------
# Contracts
# ---------------------------------------------------------------------------


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

    @property
    def signature(self) -> inspect.Signature:
        return inspect.signature(self.reference)

    def check(self, backend: str, *args, **kwargs) -> dict:
        """Validate a call's arguments; return {"sizes": ..., "dtype": ..., "device": ...}."""
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        values = bound.arguments
        sizes = check_tensors(self.name, backend, self.args, values)
        options = {k: v for k, v in values.items() if k not in self.args}
        self.check_options(backend, sizes=sizes, **options)
        first = values[next(iter(self.args))]
        return {"sizes": sizes, "dtype": first.dtype, "device": first.device}


# ---------------------------------------------------------------------------
# Backends and implementations
# ---------------------------------------------------------------------------


@dataclass
class Impl:
    """One backend's implementation of one op; calling it validates, then runs."""

    op: str
    backend: str
    fn: Callable  # the raw implementation (no argument checking)
    dtypes: tuple[torch.dtype, ...]
    grad: bool  # False: this backend has no backward for the op yet
    notes: str = ""

    def __call__(self, *args, **kwargs):
        info = OPS_REGISTRY[self.op].check(self.backend, *args, **kwargs)
        if info["dtype"] not in self.dtypes:
            names = ", ".join(DTYPE_NAMES[d] for d in self.dtypes)
            raise TypeError(f"{self.op}[{self.backend}]: tensors expected dtype in ({names}), got {DTYPE_NAMES.get(info['dtype'], info['dtype'])}")
        devices = BACKENDS_REGISTRY[self.backend].devices()
        if info["device"].type not in devices:
            raise ValueError(f"{self.op}[{self.backend}]: tensors expected on device {' or '.join(devices)}, got {info['device']}")
        if info["device"].type != "cuda":  # nvtx ranges only mark GPU timelines
            return self.fn(*args, **kwargs)
        with nvtx_range(f"{self.op}/{self.backend}/forward"):
            return self.fn(*args, **kwargs)


@dataclass
class Backend:
    """A backend: one folder of op files, a probe and a synchronize function."""

    name: str
    devices: Callable[[], tuple[str, ...]]  # device types it runs on here ("cpu", "cuda")
    probe: Callable[[], str | None]  # None, or why this backend cannot run here
    synchronize: Callable[[torch.device], None] = lambda device: None
    description: str = ""

    def why_unavailable(self) -> str | None:
        return self.probe()

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


# ---------------------------------------------------------------------------
# Profiling ranges: nvtx on CUDA builds (free when no profiler listens).
# ---------------------------------------------------------------------------


@contextlib.contextmanager
def nvtx_range(name: str):
    """An nvtx range (callers use it for CUDA work only; the CPU path skips it)."""
    torch.cuda.nvtx.range_push(name)
    try:
        yield
    finally:
        torch.cuda.nvtx.range_pop()


# ---------------------------------------------------------------------------
# Poisoned outputs: kernels allocate through new_output so tests can detect unwritten
# elements (NaN) without changing the kernels.
# ---------------------------------------------------------------------------

_POISON = [False]


@contextlib.contextmanager
def poison_outputs(enabled: bool = True):
    old, _POISON[0] = _POISON[0], enabled
    try:
        yield
    finally:
        _POISON[0] = old


def new_output(shape, dtype, device) -> torch.Tensor:
    """torch.empty, or a NaN-filled tensor inside ``poison_outputs()``."""
    if _POISON[0]:
        return torch.full(tuple(shape), math.nan, dtype=dtype, device=device)
    return torch.empty(tuple(shape), dtype=dtype, device=device)
