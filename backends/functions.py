"""Calling a backend's ``torch.autograd.Function``: ``apply(Function, *args)``.

``Function.apply`` builds a context, records the saved tensors and links a graph node:
about 30 us over the forward it wraps on the 2-core development CPU (numba_cpu
parallel_scan, B=4, T=1024, D=256: 345 us through ``apply``, 314 us calling its
``forward``), paid even where no gradient can be asked for. ``apply`` here takes that path
only when a graph will be recorded (grad mode on and some tensor argument requires grad);
otherwise it calls ``forward`` with a context that keeps what the forward sets on it and
drops the tensors it saves, which no backward will read.
"""

from __future__ import annotations

import torch


class _NoGraph:
    """The context of a forward that records no graph: attributes are kept, saved tensors
    and output marks are dropped."""

    def save_for_backward(self, *tensors):
        pass

    def mark_non_differentiable(self, *tensors):
        pass

    def mark_dirty(self, *tensors):
        pass

    def set_materialize_grads(self, value: bool):
        pass


def records_graph(args) -> bool:
    """Whether autograd would record a graph for a call on ``args``. (A loop, not
    ``any()`` over a generator: no generator frame on every op call.)"""
    if torch.is_grad_enabled():
        for a in args:
            if isinstance(a, torch.Tensor) and a.requires_grad:
                return True
    return False


def apply(function: type[torch.autograd.Function], *args):
    """``function.apply(*args)`` where a graph is recorded, else ``function.forward`` alone."""
    if records_graph(args):
        return function.apply(*args)
    return function.forward(_NoGraph(), *args)
