"""Poisoned outputs: inside ``poison_outputs()`` every buffer a backend allocates for a
result (``new_output``, and ``torch.empty`` / ``torch.empty_like`` of a floating dtype
called by the backends, forward and backward) is NaN-filled, so an element a kernel
never writes shows as NaN in the correctness check (as flash-linear-attention's tests
patch ``torch.empty``). Outside it they are plain ``torch.empty``."""

from __future__ import annotations

import contextlib
import math

import torch
from torch._subclasses.fake_tensor import is_fake

_POISON = [False]
_EMPTY, _EMPTY_LIKE = torch.empty, torch.empty_like  # the real allocators


def _nan_filled(t: torch.Tensor) -> torch.Tensor:
    return t.fill_(math.nan) if t.is_floating_point() else t


def _traced(t: torch.Tensor) -> bool:
    """Whether ``t`` is allocated while torch.compile traces. Dynamo's own tracing says so
    through ``is_compiling()``; the graph it records calls ``torch.empty_like`` by name,
    and AOT autograd runs that graph again on fake tensors, where torch 2.11 (the GPU
    machines' version) answers ``is_compiling()`` False and torch 2.13 True: the fake
    tensor tells both."""
    return torch.compiler.is_compiling() or is_fake(t)


# Under torch.compile (a peer checked in the poisoned context) the allocations stay plain:
# inductor refuses a graph that fills an empty buffer and then copies into it
# ("n=copy_, n.args[0]=empty"), and what is checked there is the compiler, not a kernel.
def _poisoned_empty(*args, **kwargs):
    t = _EMPTY(*args, **kwargs)
    return t if _traced(t) else _nan_filled(t)


def _poisoned_empty_like(*args, **kwargs):
    t = _EMPTY_LIKE(*args, **kwargs)
    return t if _traced(t) else _nan_filled(t)


@contextlib.contextmanager
def poison_outputs(enabled: bool = True):
    """NaN-filled allocations for the calls made inside (the forward and the backward of
    the implementation under check; never the reference). Nested uses restore in order."""
    old, _POISON[0] = _POISON[0], enabled
    patch = enabled and torch.empty is _EMPTY
    if patch:
        torch.empty, torch.empty_like = _poisoned_empty, _poisoned_empty_like
    try:
        yield
    finally:
        _POISON[0] = old
        if patch:
            torch.empty, torch.empty_like = _EMPTY, _EMPTY_LIKE


def new_output(shape, dtype, device) -> torch.Tensor:
    """torch.empty, or a NaN-filled tensor inside ``poison_outputs()``."""
    if _POISON[0]:
        return torch.full(tuple(shape), math.nan, dtype=dtype, device=device)
    return _EMPTY(tuple(shape), dtype=dtype, device=device)


def new_output_like(t: torch.Tensor) -> torch.Tensor:
    """``new_output(t.shape, t.dtype, t.device)``, contiguous whatever t's strides: one
    torch call where that is four Python attribute reads and a keyword call (about 5
    against 10 us between two streaming kernels on the 2-core development CPU)."""
    if _POISON[0]:
        return torch.full_like(t, math.nan, memory_format=torch.contiguous_format)
    return _EMPTY_LIKE(t, memory_format=torch.contiguous_format)
