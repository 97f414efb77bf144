"""Backend mixes: ``{"default": "torch", "parallel_scan": "triton"}`` -> an OpTable.

A mix names a backend per op; "default" covers the ops it does not name. Resolution is
explicit and loud: an unknown op, a backend without the op, an unavailable backend or a
device conflict raises at once with the valid choices. There is no fallback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch


@dataclass(frozen=True)
class OpTable:
    """The ops a model calls: ``ops.parallel_scan(a, b)``; ``ops.mix`` is canonical."""

    mix: Mapping[str, str]  # {op: backend} for all seven ops, in contract order
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
