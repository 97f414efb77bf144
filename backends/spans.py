"""Every op call's forward and backward span: torch.profiler ranges (and nvtx on CUDA)
while a profiler runs, wall-clock time under ``op_clock()``; two flag tests otherwise."""

from __future__ import annotations

import contextlib
import time
from typing import Any, Callable

import torch
from torch.autograd.profiler import record_function

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
