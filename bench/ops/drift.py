"""Numerical drift: each recurrent op's forward error against float64 as T grows.

For parallel_scan, gated_update (bounded, bound=1.0, and free, bound=None),
banked_attention and elman_scan (the rung-0 form "plain", the delta gate "gated", and
the signed log-space state "log", gated as rung 3), every available backend runs the contract's inputs (``make_inputs``,
B and the widths small) in float32 and, where it takes it, bfloat16, for each T in
``DriftConfig.Ts``. The ground truth is computed in float64 from those same inputs
(the low-precision tensors upcast), so the figure is the error the arithmetic adds over
T steps, not the rounding of the inputs:

    error = max over outputs of  max |got - ref| / (max |ref| + tiny)

(tiny: float64's smallest normal, so a zero reference gives 0, not NaN; an output with
a NaN or Inf where the reference is finite gives inf, written as null, status
"nonfinite"). elman_scan's log-space pair (log|h|, sign h) is compared as the state it
stands for, h = sign exp(log|h|): relative to max |h| like every other state, and a
sign that flips where |h| is at rounding level (it happens over 10^5 steps) weighs
what that h weighs, not 2.

Ground truth. The contract's float64 reference is plain and sequential: about 30 us a
step for the scans (3 s at T = 100,000) but about 4 ms a step for banked_attention
(minutes at T = 10,000); elman_scan's log space about 0.2 ms a step (its D x D terms
per row; 20 s at T = 100,000, as long as its torch backend's loop takes). Above
``reference_max_T`` of the op (banked_attention, elman_scan: 1,000; others: every T) the truth is the torch backend run in float64 (its chunked form;
float64 rounding, about 1e-16 relative, is far below any float32 drift), and the
record says so in ``oracle`` ("reference" or "torch-float64").

Records (``bench.results.append``), one per (op, variant, backend, dtype, T), with
``kind="drift"``: op, backend, dtype, variant ("bounded" | "free" for gated_update, None
otherwise), T, error, errors ({output: error}), case, oracle, seconds (the backend's
forward), device, status ("ok" | "nonfinite"), schema, run_id, time, env.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import torch

import backends
from backends.check import flatten
from backends.registry import DTYPES_BY_NAME
from bench import env, results
from bench.ops.overhead import why_not_timed

# (op, variant, options): the recurrences whose error can grow with T
VARIANTS: tuple[tuple[str, str | None, dict], ...] = (
    ("parallel_scan", None, {}),
    ("gated_update", "bounded", {"bound": 1.0}),
    ("gated_update", "free", {"bound": None}),
    ("banked_attention", None, {}),
    ("elman_scan", "plain", {"gate": False}),
    ("elman_scan", "gated", {}),
    ("elman_scan", "log", {"log_space": True}),
)
# the sizes besides T: small, so that T = 100,000 stays cheap
SIZES: dict[str, dict] = {
    "parallel_scan": dict(B=2, D=16),
    "gated_update": dict(B=2, D=16),
    "banked_attention": dict(B=1, H=2, N=2, Dk=8, Dv=8),
    "elman_scan": dict(B=2, D=16),
}
TINY = torch.finfo(torch.float64).tiny


@dataclass(frozen=True)
class DriftConfig:
    Ts: tuple[int, ...] = (100, 1_000, 10_000, 100_000)
    dtypes: tuple[str, ...] = ("float32", "bfloat16")  # each backend runs those it takes
    device: str = "cpu"
    seed: int = 0
    # the longest T whose truth is the sequential float64 reference (longer: the torch
    # backend in float64); an op not named here always uses the reference
    reference_max_T: Mapping[str, int] = field(default_factory=lambda: {"banked_attention": 1_000,
                                                                         "elman_scan": 1_000})


def relative_error(got: torch.Tensor, ref: torch.Tensor) -> float:
    """max |got - ref| / (max |ref| + tiny), in float64; inf where got is not finite."""
    got, ref = got.detach().to("cpu", torch.float64), ref.detach().to("cpu", torch.float64)
    if got.shape != ref.shape:
        raise ValueError(f"relative_error: shapes differ, got {tuple(got.shape)} and reference {tuple(ref.shape)}")
    if got.numel() == 0:
        return 0.0
    err = ((got - ref).abs().max() / (ref.abs().max() + TINY)).item()
    return err if math.isfinite(err) else math.inf


def compared(op: str, inputs: dict, outputs: list) -> dict[str, torch.Tensor]:
    """{name: tensor} of what the error is taken on: the op's outputs, except elman_scan's
    log-space pair, which is the one state h = sign exp(log|h|) (float64)."""
    if op == "elman_scan" and inputs.get("log_space"):
        h_log, h_sign = (t.detach().to("cpu", torch.float64) for t in outputs)
        return {"h": h_sign * torch.exp(h_log)}
    return dict(zip(backends.OPS[op].outputs, outputs))


def _float64(value):
    """Tensors (and tuples of them) as float64 CPU copies; other values unchanged."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", torch.float64)
    if isinstance(value, (tuple, list)):
        return type(value)(_float64(v) for v in value)
    return value


def oracle(op: str, T: int, cfg: DriftConfig = DriftConfig()) -> tuple[str, Callable]:
    """(name, float64 function) of the ground truth of ``op`` at length ``T``."""
    limit = cfg.reference_max_T.get(op)
    if limit is None or T <= limit:
        return "reference", backends.OPS[op].reference
    return "torch-float64", backends.get(op, "torch")


def pairs(ops: Sequence[str] | None = None, names: Sequence[str] | None = None,
          device="cpu") -> list[tuple[str, str | None, dict, str]]:
    """(op, variant, options, backend) measured here: available, not interpreted."""
    chosen = [v for v in VARIANTS if ops is None or v[0] in ops]
    return [(op, variant, options, b) for op, variant, options in chosen for b in (names or backends.BACKEND_NAMES)
            if op in backends.BACKENDS[b].op_names() and why_not_timed(op, b, device) is None]


def run(cfg: DriftConfig = DriftConfig(), ops: Sequence[str] | None = None, names: Sequence[str] | None = None,
        out=None, log: Callable[[str], None] = lambda msg: None) -> list[dict]:
    """Every (op, variant, backend, dtype, T); each record appended to ``out`` when done."""
    unknown = [o for o in (ops or ()) if o not in {v[0] for v in VARIANTS}]
    if unknown:
        covered = ", ".join(dict.fromkeys(v[0] for v in VARIANTS))
        raise ValueError(f"drift: unknown op(s) {unknown}; drift covers {covered}")
    run_id, fingerprint = results.new_run_id(), env.environment(cfg.device)
    chosen = pairs(ops, names, cfg.device)
    records = []
    for op, variant, options in dict.fromkeys((o, v, tuple(opts.items())) for o, v, opts, _ in chosen):
        spec = backends.OPS[op]
        names_here = [b for o, v, _, b in chosen if (o, v) == (op, variant)]
        for T in cfg.Ts:
            case = dict(SIZES[op], T=T, **dict(options))
            oracle_name, truth = oracle(op, T, cfg)
            for dtype_name in cfg.dtypes:
                dtype = DTYPES_BY_NAME[dtype_name]
                takers = [b for b in names_here if dtype in backends.get(op, b).dtypes]
                if not takers:
                    continue
                inputs = spec.make_inputs(case, dtype, cfg.device, cfg.seed)
                log(f"{op}{'/' + variant if variant else ''} T={T} {dtype_name}: truth ({oracle_name})")
                with torch.no_grad():
                    ref = flatten(truth(**{k: _float64(v) for k, v in inputs.items()}))
                for backend in takers:
                    log(f"{op}{'/' + variant if variant else ''} T={T} {dtype_name}: {backend}")
                    fn = backends.get(op, backend)
                    with torch.no_grad():
                        fn(**spec.make_inputs(dict(case, T=min(T, 8)), dtype, cfg.device, cfg.seed))  # JIT warm-up
                        start = time.perf_counter()
                        got = flatten(fn(**inputs))
                        backends.BACKENDS[backend].synchronize(torch.device(cfg.device))
                        seconds = time.perf_counter() - start
                    want = compared(op, inputs, ref)
                    errors = {name: relative_error(g, want[name]) for name, g in compared(op, inputs, got).items()}
                    error = max(errors.values())
                    rec = results.new_record("drift", run_id=run_id, env=fingerprint, op=op, backend=backend,
                                             dtype=dtype_name, variant=variant, T=T, error=error, errors=errors,
                                             case=case, oracle=oracle_name, seconds=seconds, device=cfg.device,
                                             status="ok" if math.isfinite(error) else "nonfinite")
                    if out is not None:
                        results.append(out, rec)
                    records.append(rec)
    return records
