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
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import torch
import torch.autograd.profiler as _autograd_profiler
from torch.autograd.profiler import record_function

FLOAT_DTYPES = (torch.float64, torch.float32, torch.bfloat16)
DTYPE_NAMES = {torch.float64: "float64", torch.float32: "float32", torch.bfloat16: "bfloat16"}
DTYPES_BY_NAME = {v: k for k, v in DTYPE_NAMES.items()}
MODES = ("forward", "backward", "forward_backward")


class ContractError(TypeError):
    """An implementation does not match its op's contract (raised at import time)."""


# ---------------------------------------------------------------------------
# Argument checking, shared by every backend through the @implements wrapper.
#
# Models call ops many times per step on small tensors, so the checks are compiled once
# per op (``ArgPlan``: the signature's positions and defaults, each tensor argument's
# dims as symbol slots and fixed sizes, and from those a generated straight-line
# function) and a call that passes pays only plain comparisons: no signature binding,
# no string or dict building, no device or CUDA queries (about 3-6 us per call on the
# 2-core development machine, against 20-40 us for inspect's binding and a loop that
# built the messages' pieces as it went). A call the fast path refuses is checked again
# step by step (``ArgPlan.check_slowly``), which builds the message.
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


_REQUIRED = object()  # the default of a parameter that has none
_FLOATS = frozenset(FLOAT_DTYPES)


class _Entry(NamedTuple):
    """One tensor to check: a plain argument, or one element of a tuple argument."""

    name: str  # "q", or "state.S" for an element of a tuple argument
    pos: int  # the argument's position in the signature
    sub: int  # the element's index in the tuple argument; -1 for a plain argument
    optional: bool  # None is accepted (an element: when the whole tuple is None)
    kind: str
    ellipsis: bool  # a leading "...": any number of batch axes before ``dims``
    dims: tuple[str, ...]  # the named axes, "..." removed (for messages)
    slots: tuple[int, ...]  # per axis: the symbol's index in ArgPlan.symbols, or -1 when fixed
    fixed: tuple[int, ...]  # per axis: the fixed size (0 where the axis is a symbol)


class ArgPlan:
    """The compiled checks of one op's arguments (``OpSpec.plan``)."""

    def __init__(self, op: str, signature: inspect.Signature, args: Mapping):
        params = list(signature.parameters.values())
        plain = (inspect.Parameter.POSITIONAL_OR_KEYWORD,)
        odd = [p.name for p in params if p.kind not in plain]
        if odd:
            raise ContractError(f"op '{op}': parameters {odd} must be plain (positional or keyword) parameters")
        self.op, self.signature = op, signature
        self.names = tuple(p.name for p in params)
        self.index = {n: i for i, n in enumerate(self.names)}
        self.defaults = [_REQUIRED if p.default is inspect.Parameter.empty else p.default for p in params]
        self.required = sum(d is _REQUIRED for d in self.defaults)  # required parameters come first
        self.options = tuple((n, i) for i, n in enumerate(self.names) if n not in args)
        self.pairs = []  # tuple arguments: (name, position, element names)
        self.symbols: list[str] = []
        entries = []
        for name, spec in args.items():
            pos = self.index[name]
            if isinstance(spec, Mapping):
                self.pairs.append((name, pos, tuple(spec)))
                entries += [self._entry(f"{name}.{sub}", pos, i, True, s) for i, (sub, s) in enumerate(spec.items())]
            else:
                entries.append(self._entry(name, pos, -1, spec.optional, spec))
        self.entries = tuple(entries)
        self.source = _accept_source(self)
        scope = {"Tensor": torch.Tensor, "FLOATS": _FLOATS, "BOOL": torch.bool}
        exec(compile(self.source, f"<argument checks of {op}>", "exec"), scope)
        self._accept = scope["accept"]

    def _entry(self, name, pos, sub, optional, spec: TensorArg) -> _Entry:
        dims = spec.dims.split()
        ellipsis = bool(dims) and dims[0] == "..."
        dims = dims[1:] if ellipsis else dims
        for d in dims:
            if not d.isdigit() and d not in self.symbols:
                self.symbols.append(d)
        slots = tuple(-1 if d.isdigit() else self.symbols.index(d) for d in dims)
        fixed = tuple(int(d) if d.isdigit() else 0 for d in dims)
        return _Entry(name, pos, sub, optional, spec.kind, ellipsis, tuple(dims), slots, fixed)

    def bind(self, args: tuple, kwargs: dict) -> list:
        """The call's values in signature order, defaults filled in; a call that
        ``inspect.Signature.bind`` would reject goes there, for its exact message."""
        n = len(args)
        if n > len(self.names):
            return self._bind_slowly(args, kwargs)
        values = [*args, *self.defaults[n:]]
        index = self.index
        for k, v in kwargs.items():
            i = index.get(k, -1)
            if i < n:  # unknown, or given positionally too
                return self._bind_slowly(args, kwargs)
            values[i] = v
        for i in range(n, self.required):
            if values[i] is _REQUIRED:
                return self._bind_slowly(args, kwargs)
        return values

    def _bind_slowly(self, args, kwargs) -> list:
        bound = self.signature.bind(*args, **kwargs)  # raises the TypeError Python would
        bound.apply_defaults()
        return [bound.arguments[n] for n in self.names]

    def check(self, backend: str, values: list) -> tuple[list, torch.dtype, torch.device]:
        """Check ranks, sizes, dtypes and devices; return (sizes per symbol, None where
        unbound; the first argument's dtype and device). A call that passes takes the
        generated straight-line code (``_accept_source``); one it refuses is checked
        again by ``check_slowly``, which names what is wrong."""
        return self._accept(values) or self.check_slowly(backend, values)

    def check_slowly(self, backend: str, values: list) -> tuple[list, torch.dtype, torch.device]:
        """The checks one by one, in the order that decides which problem is reported."""
        op = self.op
        for name, pos, subs in self.pairs:
            v = values[pos]
            if v is not None and (not isinstance(v, (tuple, list)) or len(v) != len(subs)):
                raise _fail(TypeError, op, backend, name, f"None or a tuple ({', '.join(subs)})", type(v).__name__)
        sizes = [None] * len(self.symbols)
        where = [None] * len(self.symbols)  # the argument that bound each symbol (messages)
        float_dtype = device = first_float = first_device = first_dtype = on_cpu = None
        for name, pos, sub, optional, kind, ellipsis, dims, slots, fixed in self.entries:
            t = values[pos]
            if sub >= 0:  # an element: optional only with its whole tuple
                if t is None:
                    continue
                t = t[sub]
            if t is None:
                if optional and sub < 0:
                    continue
                raise _fail(TypeError, op, backend, name, "a torch.Tensor", "None")
            if not isinstance(t, torch.Tensor):
                raise _fail(TypeError, op, backend, name, "a torch.Tensor", type(t).__name__)
            dtype = t.dtype
            if kind == "float":
                if dtype is float_dtype:  # the common case: the dtype of the first float tensor
                    pass
                elif dtype not in _FLOATS:
                    raise _fail(TypeError, op, backend, name, "a float64, float32 or bfloat16 tensor", f"dtype {dtype}")
                elif float_dtype is None:
                    float_dtype, first_float = dtype, name
                else:
                    raise _fail(TypeError, op, backend, name, f"dtype {float_dtype} (the dtype of '{first_float}')",
                                f"dtype {dtype}")
            elif kind == "bool" and dtype != torch.bool:
                raise _fail(TypeError, op, backend, name, "a bool tensor", f"dtype {dtype}")
            if device is None:  # the first tensor: the call's dtype and device are its own
                device, first_device, on_cpu, first_dtype = t.device, name, t.is_cpu, dtype
            elif not (on_cpu and t.is_cpu) and t.device != device:  # is_cpu: no device object built
                raise _fail(ValueError, op, backend, name, f"device {device} (the device of '{first_device}')",
                            f"device {t.device}")
            shape = t.shape
            rank, want = len(shape), len(dims)
            if ellipsis:
                if rank < want:
                    raise _fail(ValueError, op, backend, name, f"at least {want} dims [..., {', '.join(dims)}]",
                                f"shape {tuple(shape)}")
                shape = shape[rank - want:]
            elif rank != want:
                raise _fail(ValueError, op, backend, name, f"{want} dims [{', '.join(dims)}]",
                            f"shape {tuple(t.shape)}")
            for slot, size_fixed, size in zip(slots, fixed, shape):
                if slot < 0:
                    if size != size_fixed:
                        raise _fail(ValueError, op, backend, name, f"[{', '.join(dims)}] with {size_fixed} fixed",
                                    f"shape {tuple(t.shape)}")
                elif sizes[slot] is None:
                    sizes[slot] = size
                    where[slot] = name
                elif sizes[slot] != size:
                    dim = self.symbols[slot]
                    raise _fail(ValueError, op, backend, name, f"{dim} = {sizes[slot]} (from '{where[slot]}')",
                                f"{dim} = {size} in shape {tuple(t.shape)}")
        return sizes, first_dtype, device

    def sizes(self, slots: list) -> dict:
        """{"B": 2, ...}: the bound symbols by name."""
        if None in slots:  # a symbol of an absent optional argument only
            return {s: n for s, n in zip(self.symbols, slots) if n is not None}
        return dict(zip(self.symbols, slots))


def _accept_source(plan: ArgPlan) -> str:
    """Python source of ``accept(values)``: the checks of ``plan`` unrolled into plain
    comparisons, one local per size symbol; it returns (sizes, dtype, device) when every
    check passes and None at the first that fails (no message: ``check_slowly`` gives it).
    A symbol or the float dtype first met in an optional argument is "maybe" bound after
    it, and tested for None where it is used next."""
    lines = ["def accept(values):"]
    state = {}  # symbol slot or "dtype" -> "bound" | "maybe" (absent: unbound)
    first = True
    for name, pos, subs in plan.pairs:
        lines += [f"    v = values[{pos}]  # {name}",
                  f"    if v is not None and (not isinstance(v, (tuple, list)) or len(v) != {len(subs)}):",
                  "        return None"]
    for slot in range(len(plan.symbols)):
        lines.append(f"    z{slot} = None  # {plan.symbols[slot]}")
    lines.append("    fd = None  # the float dtype")
    for e in plan.entries:
        optional = e.optional or e.sub >= 0
        if first and optional:
            raise ContractError(f"op '{plan.op}': the first tensor argument '{e.name}' must not be optional")
        body = ["if not isinstance(t, Tensor):", "    return None"]
        if e.kind == "float":
            if state.get("dtype") == "bound":
                body += ["if t.dtype is not fd:", "    return None"]
            else:
                body += ["if t.dtype is not fd:", "    if fd is not None or t.dtype not in FLOATS:",
                         "        return None", "    fd = t.dtype"]
        elif e.kind == "bool":
            body += ["if t.dtype is not BOOL:", "    return None"]
        if first:
            body += ["dtype, device, cpu = t.dtype, t.device, t.is_cpu"]
        else:
            body += ["if (not t.is_cpu) if cpu else (t.device != device):", "    return None"]
        n = len(e.dims)
        body += ["s = t.shape", f"if len(s) {'<' if e.ellipsis else '!='} {n}:", "    return None"]
        if n:
            body.append("".join(f"s{i}, " for i in range(n)) + ("= s" if not e.ellipsis else f"= s[len(s) - {n}:]"))
        here = set()  # slots bound earlier in this argument
        for i, (slot, fixed) in enumerate(zip(e.slots, e.fixed)):
            if slot < 0:
                body += [f"if s{i} != {fixed}:", "    return None"]
            elif slot in here or state.get(slot) == "bound":
                body += [f"if s{i} != z{slot}:", "    return None"]
            elif state.get(slot) == "maybe":
                body += [f"if z{slot} is None:", f"    z{slot} = s{i}", f"elif s{i} != z{slot}:", "    return None"]
            else:
                body += [f"z{slot} = s{i}"]
            if slot >= 0:
                here.add(slot)
        for key in here | ({"dtype"} if e.kind == "float" else set()):
            state[key] = "bound" if not optional or state.get(key) == "bound" else "maybe"
        lines.append(f"    t = values[{e.pos}]  # {e.name}: [{', '.join(e.dims)}]")
        if e.sub >= 0:
            lines += ["    if t is not None:", f"        t = t[{e.sub}]", "        if t is None:",
                      "            return None"]
            lines += ["        " + b for b in body]
        elif e.optional:
            lines += ["    if t is not None:"] + ["        " + b for b in body]
        else:
            lines += ["    if t is None:", "        return None"] + ["    " + b for b in body]
        first = False
    lines.append(f"    return [{', '.join(f'z{s}' for s in range(len(plan.symbols)))}], dtype, device")
    return "\n".join(lines) + "\n"


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
        plan = self.plan
        values = plan.bind(args, kwargs)
        slots, dtype, device = plan.check(backend, values)
        sizes = plan.sizes(slots)
        if plan.options:
            self.check_options(backend, sizes=sizes, **{name: values[i] for name, i in plan.options})
        else:
            self.check_options(backend, sizes=sizes)
        return values, sizes, dtype, device

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
        values, _, dtype, device = self._spec.validate(self.backend, args, kwargs)
        if dtype not in self.dtypes:
            names = ", ".join(DTYPE_NAMES[d] for d in self.dtypes)
            raise TypeError(f"{self.op}[{self.backend}]: tensors expected dtype in ({names}), got {DTYPE_NAMES.get(dtype, dtype)}")
        kind = device.type
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


# ---------------------------------------------------------------------------
# Profiling ranges: nvtx on CUDA (free when no profiler listens); torch.profiler ranges
# for the forward and the backward of every call while a profiler runs.
# ---------------------------------------------------------------------------


@contextlib.contextmanager
def nvtx_range(name: str):
    """An nvtx range (callers use it for CUDA work only; the CPU path skips it)."""
    torch.cuda.nvtx.range_push(name)
    try:
        yield
    finally:
        torch.cuda.nvtx.range_pop()


class OpClock:
    """Wall time of every op call, per range name (``op/backend/forward|backward``), while
    ``op_clock()`` is active: a perf_counter read on each side of the forward and of the
    backward span, so (unlike torch.profiler, which records every aten op too and
    inflates a step of many small calls up to 3x) the clocked step runs at its own
    speed and its rows add up to it. CPU only: on CUDA a call returns before its kernels
    finish, so GPU breakdowns take torch.profiler's device times instead."""

    def __init__(self):
        self.ns: dict[str, int] = {}
        self.calls: dict[str, int] = {}

    def add(self, name: str, ns: int) -> None:
        self.ns[name] = self.ns.get(name, 0) + ns
        self.calls[name] = self.calls.get(name, 0) + 1

    def timed(self, fn: Callable, name: str) -> Callable:
        def call(*values):
            t0 = time.perf_counter_ns()
            try:
                return fn(*values)
            finally:
                self.add(name, time.perf_counter_ns() - t0)

        return call


_CLOCK: list[OpClock | None] = [None]  # the active clock (one per process; not nested)


@contextlib.contextmanager
def op_clock():
    """``with op_clock() as clock:`` every op call meanwhile adds its forward and backward
    wall time to ``clock.ns`` (see ``OpClock``)."""
    if _CLOCK[0] is not None:
        raise RuntimeError("op_clock: a clock is already running (clocks do not nest)")
    clock = _CLOCK[0] = OpClock()
    try:
        yield clock
    finally:
        _CLOCK[0] = None


class _BackwardSpan:
    """The backward span of one call: opened by the first of the op's output nodes to
    run (a node pre-hook), closed by the identity node on its inputs, which runs once
    every node of the op has run (it needs all their gradients). A torch.profiler range
    when ``ranges``, a clock reading when ``clock``. A retained graph replayed opens and
    closes it again."""

    __slots__ = ("name", "range", "clock", "ranges", "t0")

    def __init__(self, name: str, ranges: bool = True, clock: OpClock | None = None):
        self.name, self.range, self.ranges, self.clock, self.t0 = name, None, ranges, clock, None

    def open(self, grad_outputs):
        if self.t0 is not None:
            return
        self.t0 = time.perf_counter_ns()
        if self.ranges:
            self.range = record_function(self.name)
            self.range.__enter__()

    def close(self):
        if self.t0 is None:
            return
        if self.range is not None:
            self.range.__exit__(None, None, None)
            self.range = None
        if self.clock is not None:
            self.clock.add(self.name, time.perf_counter_ns() - self.t0)
        self.t0 = None


class _CloseSpan(torch.autograd.Function):
    """Identity on the op's inputs; its backward closes the span. (Only the inputs are
    wrapped: the op never writes into them, while a caller may write into the outputs,
    which a custom Function's outputs forbid.)"""

    @staticmethod
    def forward(ctx, span, *tensors):
        ctx.span = span
        ctx.set_materialize_grads(False)
        return tensors

    @staticmethod
    def backward(ctx, *grads):
        ctx.span.close()
        return (None, *grads)


def _tensors(value):
    """The tensors of an op's output: a tensor or nested tuples of them."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _tensors(v)


def _backward_range(span: _BackwardSpan, fn: Callable, values: list, entries) -> Any:
    """``fn(*values)`` with its backward inside ``span``: the tensor arguments that
    require a gradient pass through ``_CloseSpan``."""
    wrapped = []  # (entry, tensor)
    for e in entries:
        t = values[e.pos]
        if e.sub >= 0 and t is not None:
            t = t[e.sub]
        if t is not None and t.requires_grad:
            wrapped.append((e, t))
    if not wrapped:
        return fn(*values)
    aliases = _CloseSpan.apply(span, *(t for _, t in wrapped))
    values = list(values)
    for (e, _), alias in zip(wrapped, aliases):
        if e.sub < 0:
            values[e.pos] = alias
        else:
            items = list(values[e.pos])
            items[e.sub] = alias
            values[e.pos] = type(values[e.pos])(items)
    out = fn(*values)
    for t in _tensors(out):
        if t.grad_fn is not None:
            t.grad_fn.register_prehook(span.open)
    return out


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
