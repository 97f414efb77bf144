"""Prepared benchmarks: one (op, backend or peer, case, dtype, device, mode) turned into
a zero-argument closure that runs exactly the timed work.

Everything else happens here, outside the closure: the inputs are built from the
contract's ``make_inputs``, the JIT / autotuner / torch.compile is warmed, and the cost of
that first call is measured and recorded as ``compile_seconds``. The runner, the
pytest-benchmark files and the asv suite all time ``Prepared.fn``, so the three agree
on what a figure means.

Modes:
- ``forward``: the op under ``torch.no_grad()`` (inference: no graph is recorded).
- ``backward``: only the backward pass of a graph built once here and retained
  (``torch.autograd.backward(..., retain_graph=True)`` with fixed random cotangents).
  The leaves' ``.grad`` is reset to None before each call, so gradients are written,
  not accumulated (no extra add per call), and the allocator reuses the same blocks.
- ``forward_backward``: the forward with a graph, then the same backward.

Selection is explicit: a pair that cannot run raises ``Unavailable`` with the reason
(``bench.ops.candidates.why_unavailable``: backend probe, device, dtype, no backward, peer
not installed, case that does not fit the peer); nothing falls back to another
implementation. ``bench.ops.pipeline`` runs the correctness gate before this.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Callable

import torch

import backends
from backends.check import differentiable_leaves, flatten
from bench.ops import candidates
from bench.ops.candidates import Unavailable
from bench.ops.cases import contract_case
from bench.ops.dtypes import name as dtype_name

COTANGENT_SEED = 12345


@dataclass
class Prepared:
    op: str
    name: str  # backend or peer
    case: dict  # the contract case (harness keys removed)
    dtype: torch.dtype
    device: str
    mode: str
    fn: Callable[[], object]  # zero-argument closure: runs exactly the timed work
    sync: Callable[[], None]  # the implementation's synchronize for this device
    compile_seconds: float  # first call (JIT, autotune, compile) minus a steady call
    first_call_seconds: float  # the first call itself, for the record
    inputs: dict  # the op's keyword arguments the closure uses (gradients land on their leaves)


def _cotangents(outputs: list, seed: int) -> list:
    """Fixed random cotangents, zero where the output is not finite (log-space -inf)."""
    gen = torch.Generator().manual_seed(seed)
    cots = []
    for out in outputs:
        c = torch.randn(out.shape, generator=gen, dtype=torch.float32).to(out.device, out.dtype)
        cots.append(torch.where(torch.isfinite(out.detach()), c, torch.zeros_like(c)))
    return cots


def _graph_outputs(spec, result) -> list:
    """The differentiable outputs that carry a graph, in the contract's order."""
    named = zip(spec.outputs, flatten(result))
    return [t for n, t in named if n in spec.differentiable_outputs and t.requires_grad]


@functools.cache
def _warm_autograd() -> None:
    """The first backward of a process with explicit cotangents imports sympy (about a
    second) and starts the engine's threads; pay that here, not in the first pair's
    compile time."""
    x = torch.ones(2, requires_grad=True)
    y = x * x
    torch.autograd.backward([y], [torch.ones_like(y)], inputs=[x])


def _timed(call: Callable, sync: Callable) -> tuple[float, object]:
    sync()
    start = time.perf_counter()
    value = call()
    sync()
    return time.perf_counter() - start, value


def prepare(op: str, name: str, case: dict, dtype: torch.dtype = torch.float32, device="cpu",
            mode: str = "forward", seed: int = 0, warmup: int = 2) -> Prepared:
    """Build inputs, warm the implementation, measure its compile time; return the closure."""
    reason = candidates.why_unavailable(op, name, device, case=case, dtype=dtype, mode=mode)
    if reason is not None:
        raise Unavailable(f"{op}[{name}] {dtype_name(dtype)} {mode} on {device}: {reason}")
    spec = backends.OPS[op]
    case = contract_case(case)
    fn = candidates.implementation(op, name)
    sync = candidates.synchronizer(name, device)
    inputs = spec.make_inputs(case, dtype, device, seed)
    grad = mode != "forward"
    if grad:
        _warm_autograd()
    leaves = list(differentiable_leaves(spec, inputs).values()) if grad else []
    for t in leaves:
        t.requires_grad_(True)

    def forward():
        with torch.no_grad():
            return fn(**inputs)

    def clear():
        for t in leaves:
            t.grad = None

    def graph():
        """The forward with a graph: the outputs the backward starts from."""
        outs = _graph_outputs(spec, fn(**inputs))
        if not outs:
            raise Unavailable(f"{op}[{name}]: no output carries a gradient (is the backward registered?)")
        return outs

    held = {}  # the retained graph's outputs and the fixed cotangents (built once, outside the closures)

    def backward():
        clear()
        torch.autograd.backward(held["outs"], held["cots"], inputs=leaves, retain_graph=True)

    def forward_backward():
        clear()
        torch.autograd.backward(graph(), held["cots"], inputs=leaves)

    extra = 0.0  # steady work the first call did that the closure does not (a graph for backward)
    if mode == "forward":
        first, _ = _timed(forward, sync)
        closure = forward
    else:
        t_graph, held["outs"] = _timed(graph, sync)
        held["cots"] = _cotangents(held["outs"], seed + COTANGENT_SEED)
        t_back, _ = _timed(backward, sync)
        first = t_graph + t_back  # the first forward and backward: compile of both
        if mode == "forward_backward":
            del held["outs"]  # its closure builds a graph per call
            closure = forward_backward
        else:
            # replay a graph built once the JIT is warm
            extra, held["outs"] = _timed(graph, sync)
            closure = backward

    steady = min(_timed(closure, sync)[0] for _ in range(max(1, warmup))) + extra
    return Prepared(op=op, name=name, case=case, dtype=dtype, device=str(device), mode=mode, fn=closure,
                    sync=sync, compile_seconds=max(0.0, first - steady), first_call_seconds=first,
                    inputs=inputs)
