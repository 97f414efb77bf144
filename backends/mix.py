"""Backend mixes: ``{"default": "torch", "parallel_scan": "triton"}`` -> an OpTable, and
the one vocabulary that names a mix everywhere (records, grids, the CLI, reports).

A mix names a backend per op; "default" covers the ops it does not name. Resolution is
explicit and loud: an unknown op, a backend without the op, an unavailable backend or a
device conflict raises at once with the valid choices. There is no fallback.

A mix's id (``mix_id``) is canonical: the same ops on the same backends give the same id
however the mix was written. The mix is expanded over every op; its default is the
backend that runs most ops (ties: torch, then the order of ``backends.BACKEND_NAMES``);
then come the ops on other backends as ``op=backend``, sorted by op name:

    "numba_cpu"                                       every op on numba_cpu
    "torch+logspace_matvec=numba_cpu+micro_mlp=numba_cpu"
    "torch_compile"                                   a peer's name passes through

``parse_mix`` reads that id and, as an alias, the older comma form
``default=torch,parallel_scan=numba_cpu`` (``alias_note`` says what id it names).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch


@dataclass(frozen=True)
class OpTable:
    """The ops a model calls: ``ops.parallel_scan(a, b)``; ``ops.mix`` is canonical."""

    mix: Mapping[str, str]  # {op: backend} for every op, in contract order
    device: str
    _impls: Mapping

    def __post_init__(self):
        # each op an instance attribute: ``ops.parallel_scan`` is then a plain lookup
        # (models call ops many times per step), not a failed one that __getattr__ answers
        for op, impl in self._impls.items():
            object.__setattr__(self, op, impl)

    def __getattr__(self, op):
        impls = object.__getattribute__(self, "_impls")
        if op in impls:
            return impls[op]
        raise AttributeError(f"OpTable has no op '{op}'; ops are: {', '.join(impls)}")

    def __dir__(self):
        return list(super().__dir__()) + list(self._impls)


def parse_mix(text: str) -> dict:
    """A mix id or its alias -> a mix dict.

    "torch+parallel_scan=numba_cpu" or "default=torch,parallel_scan=numba_cpu" ->
    {"default": "torch", "parallel_scan": "numba_cpu"}; "numba_cpu" -> {"default": "numba_cpu"}.
    Names are checked by ``resolve``, not here (a peer's name is a valid id too)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"mix: expected a mix id such as 'torch' or 'torch+parallel_scan=numba_cpu', got {text!r}")
    text = text.strip()
    if "," in text or text.startswith("default="):  # the alias: default=B,op=B,...
        mix = {}
        for part in text.split(","):
            op, sep, backend = (x.strip() for x in part.partition("="))
            if not sep or not op or not backend:
                raise ValueError(f"mix {text!r}: expected default=BACKEND,op=BACKEND,..., got the part {part!r}")
            mix[op] = backend
        return mix
    default, *moves = (x.strip() for x in text.split("+"))
    if "=" in default or not default:
        raise ValueError(f"mix {text!r}: expected DEFAULT+op=backend+... (the default backend first), got {default!r}")
    mix = {"default": default}
    for move in moves:
        op, sep, backend = (x.strip() for x in move.partition("="))
        if not sep or not op or not backend:
            raise ValueError(f"mix {text!r}: expected DEFAULT+op=backend+..., got the part {move!r}")
        mix[op] = backend
    return mix


def mix_id(mix: Mapping[str, str] | str) -> str:
    """The canonical id of a mix (a dict, an id or its alias); see the module docstring."""
    import backends

    if isinstance(mix, str):
        mix = parse_mix(mix)
    default = mix.get("default")
    if set(mix) == {"default"}:
        return default
    unknown = [k for k in mix if k != "default" and k not in backends.OPS]
    if unknown:
        raise ValueError(f"mix names unknown op(s) {unknown}; valid keys: default, {', '.join(backends.OPS)}")
    bad = [b for b in mix.values() if b not in backends.BACKENDS]
    if bad:
        raise ValueError(f"mix names unknown backend(s) {bad}; backends: {', '.join(backends.BACKENDS)}")
    full = {op: mix.get(op, default) for op in backends.OPS if op in mix or default is not None}
    counts: dict[str, int] = {}
    for backend in full.values():
        counts[backend] = counts.get(backend, 0) + 1
    order = {name: i for i, name in enumerate(("torch",) + tuple(n for n in backends.BACKEND_NAMES if n != "torch"))}
    main = min(counts, key=lambda b: (-counts[b], order.get(b, len(order)), b))
    moves = sorted(f"{op}={backend}" for op, backend in full.items() if backend != main)
    return "+".join([main, *moves])


def alias_note(text: str) -> str | None:
    """A line for the CLI when ``text`` is not written as its canonical id, else None."""
    canonical = mix_id(text)
    return None if canonical == text.strip() else f"mix {text.strip()!r} is {canonical!r}"


def resolve(mix: Mapping[str, str] | str, device: str | torch.device = "cpu") -> OpTable:
    """Turn a mix (or a single backend name) into an OpTable for ``device``."""
    import backends

    if isinstance(mix, str):
        mix = {"default": mix}
    device_type = torch.device(device).type
    unknown = [k for k in mix if k != "default" and k not in backends.OPS]
    if unknown:
        raise ValueError(f"mix names unknown op(s) {unknown}; valid keys: default, {', '.join(backends.OPS)}")
    canonical, impls = {}, {}
    for op in backends.OPS:
        name = mix.get(op, mix.get("default"))
        if name is None:
            raise ValueError(f"mix gives no backend for op '{op}' and has no 'default'; backends: {', '.join(backends.BACKENDS)}")
        impl = backends.get(op, name)
        devices = backends.BACKENDS[name].devices()
        if device_type not in devices:
            raise ValueError(f"mix: backend '{name}' for op '{op}' runs on {' or '.join(devices)}, "
                             f"but device '{device}' was requested")
        impls[op] = impl
        canonical[op] = name
    return OpTable(mix=canonical, device=str(device), _impls=impls)
