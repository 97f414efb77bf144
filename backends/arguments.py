"""The generated argument checks behind every op call (``OpSpec.validate``): a call that
passes pays plain comparisons; a refused call is checked again step by step to name the
op, the backend, the argument, what was expected and what was given."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Mapping, NamedTuple

import torch

from backends.dtypes import FLOAT_DTYPES


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
# The device the generated checks return for a call on CPU tensors: one object, so a caller
# tells a CPU call by identity. ``t.device`` builds a new device object and ``device.type``
# a new string on every call, about 8 us between two streaming kernels on the 2-core
# development CPU (scripts/scan_vs_add.py), where ``t.is_cpu`` is a flag read.
CPU = torch.device("cpu")


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
        scope = {"Tensor": torch.Tensor, "FLOATS": _FLOATS, "BOOL": torch.bool, "CPU": CPU}
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
            body += ["dtype, cpu = t.dtype, t.is_cpu", "device = CPU if cpu else t.device"]
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
