"""Model metrics: each one registered function next to what it measures (as tritonbench's
``@register_metric``). After a group's steps are timed, every metric that applies runs
once on each prepared mix that passed; what it returns is merged into that mix's record.

    @metric("peak_memory", fields=("peak_mem_bytes",), peers=True)
    def peak_memory(ctx: MetricContext) -> dict: ...

A new metric is one function here, its fields declared in bench/results.py (kind "model")
and, where the report shows it, its column in reports/sections/models.py. A metric that
raises leaves its fields out and names why in ``metric_errors`` (the timing stands).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


@dataclass(frozen=True)
class MetricContext:
    name: str  # the mix id, or a peer's name
    model: torch.nn.Module  # the prepared model (a peer: the eager model it compiles)
    step: Callable[[], None]  # one training step (forward, backward, optimizer)
    tokens: torch.Tensor  # [B, T] int64, the group's batch
    device: str
    peer: bool  # a whole-model peer (torch_compile), not a backend mix


@dataclass(frozen=True)
class Metric:
    name: str
    fields: tuple[str, ...]  # the record fields it writes
    fn: Callable[[MetricContext], dict]
    peers: bool  # measured for the peers too
    applies: Callable[[torch.nn.Module], bool]  # which models it measures


METRICS: dict[str, Metric] = {}


def metric(name: str, fields: tuple[str, ...], peers: bool = False,
           applies: Callable[[torch.nn.Module], bool] = lambda model: True):
    """Register ``fn(ctx) -> {field: value}`` as the model metric ``name``."""
    def register(fn):
        if name in METRICS:
            raise ValueError(f"model metric {name!r} is registered twice")
        METRICS[name] = Metric(name, tuple(fields), fn, peers, applies)
        return fn
    return register


def measure(ctx: MetricContext) -> dict:
    """Every registered metric that applies to ``ctx``, merged; failures named by metric."""
    out, errors = {}, {}
    for m in METRICS.values():
        if (ctx.peer and not m.peers) or not m.applies(ctx.model):
            continue
        try:
            got = m.fn(ctx)
        except Exception as exc:  # one metric's failure never costs the others or the timing
            errors[m.name] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            continue
        unknown = set(got) - set(m.fields)
        if unknown:
            raise ValueError(f"model metric {m.name!r} returned undeclared fields {sorted(unknown)}; "
                             f"declared: {', '.join(m.fields)}")
        out.update(got)
    if errors:
        out["metric_errors"] = errors
    return out


@metric("peak_memory", fields=("peak_mem_bytes",), peers=True)
def peak_memory(ctx: MetricContext) -> dict:
    """Peak memory of one training step (CUDA: the allocator's peak; CPU: the live tensor
    storages, or torch.profiler's allocation events for the compiled peers, whose
    compiled code a dispatch mode does not see; torch tensors only)."""
    from bench.modelbench.profile import peak_memory as measure_peak

    return {"peak_mem_bytes": measure_peak(ctx.step, ctx.device, compiled=ctx.peer)}


@metric("op_breakdown", fields=("op_breakdown", "breakdown_step_ns", "breakdown_method"))
def op_breakdown(ctx: MetricContext) -> dict:
    """Each op's share of a step from its forward and backward spans (bench/modelbench/profile.py)."""
    from bench.modelbench.profile import op_breakdown as breakdown

    shares, wall, method = breakdown(ctx.step, ctx.device)
    return {"op_breakdown": shares, "breakdown_step_ns": wall, "breakdown_method": method}


def _thinks(model) -> bool:
    return getattr(model.config, "family", None) == "stackformer"


@metric("thinking", fields=("thinking",), applies=_thinks)
def thinking(ctx: MetricContext) -> dict:
    """The stackformer's thinking over the group's batch: steps per token (mean and
    histogram), the share halted by the mass threshold, pushed, popped, dropped and
    left mass per token (models.stackformer.thinking_summary)."""
    from models.stackformer import thinking_summary

    with torch.no_grad():
        ctx.model(ctx.tokens)
    return {"thinking": thinking_summary(ctx.model.last_aux, ctx.model.config.max_steps)}
