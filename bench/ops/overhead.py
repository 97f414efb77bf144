"""The per-call cost of the registry's argument checks: ``impl.fn`` (raw) against ``impl``
(checked: signature binding, ranks, sizes, dtypes, devices, options, profiler ranges).

Models call ops many times per step on small tensors, so what the checks cost is
measured where it weighs most: one tiny case per op (``TINY_CASES``), the forward under
``torch.no_grad()``, the callables of one (op, backend) timed interleaved in one process
(``bench.timing.time_interleaved``), medians compared. overhead = median(checked) -
median(raw); its 95% interval comes from the bootstrap interval of the ratio checked /
raw (``bench.timing.ratio_interval``), scaled by the raw median. On a shared machine that
difference of two kernel timings is noisy, so the checked path is also timed around a
kernel that does nothing (``checks``): the wrapper's own cost, read directly.

Records (``bench.results.append``), one per (op, backend), with ``kind="overhead"``:

    op, backend, case, case_id, dtype, device, mode ("forward"), status, error
    raw_ns, checked_ns                   medians of the raw samples (ns per call)
    checks_ns                            median of the checked path around a no-op kernel
    raw_samples_ns, checked_samples_ns,  the samples
    checks_samples_ns
    overhead_ns, overhead_ci95_ns        checked - raw, and its bootstrap interval [lo, hi]
    steal_pct, env                       as in op timings (bench/results.py)

Backends run in an interpreter or simulator (TRITON_INTERPRET, NUMBA_ENABLE_CUDASIM)
are not timed: their calls take milliseconds of Python, which hides the checks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import torch

import backends
from bench.ops import candidates, dtypes
from bench import env, results
from bench.ops.cases import case_id
from bench.timing import Candidate, TimingConfig, ratio_interval, summarize, time_interleaved

# One small call per op: the sizes a model meets when it calls an op per step (stack_step
# B4 K8 D16 is the case of issue 9); every option that has a check is set.
TINY_CASES: dict[str, dict] = {
    "micro_mlp": dict(N=16, D=8, activation="relu"),
    "gated_update": dict(B=4, T=8, D=16, bound=1.0),
    "logspace_matvec": dict(B=4, M=16, K=16),
    "parallel_scan": dict(B=4, T=8, D=16),
    "banked_attention": dict(B=1, T=4, H=2, N=2, Dk=8, Dv=8, state=True),
    "stack_step": dict(B=4, K=8, D=16),
    "nsm_route": dict(B=2, T=8, D=16, S=4, top_k=2, mask=True),
    "elman_scan": dict(B=4, T=8, D=16, log_space=True),  # gate and h0 (a log pair): every check runs
}
# Backends whose CPU device is an interpreter, and the variable that turns it on.
EMULATORS = {"triton": "TRITON_INTERPRET", "numba_cuda": "NUMBA_ENABLE_CUDASIM"}


@dataclass(frozen=True)
class OverheadConfig:
    device: str = "cpu"
    dtype: str = "float32"
    seed: int = 0
    # each (op, backend) is timed for about budget_s; tiny calls need many samples for a
    # difference of two medians, so no early precision stop (target_rel_iqr = 0)
    timing: TimingConfig = field(default_factory=lambda: TimingConfig(
        warmup_s=0.1, min_reps=50, max_reps=3000, target_rel_iqr=0.0, budget_s=1.5))


def why_not_timed(op: str, backend: str, device="cpu", dtype: str = "float32") -> str | None:
    """None, or why this pair is not measured here (``bench.ops.candidates.why_unavailable``,
    plus: only registry backends have a checked path apart from the raw one, and an
    interpreted backend is not timed)."""
    if backend not in backends.BACKENDS:
        return f"'{backend}' is not a registry backend; backends are: {', '.join(backends.BACKENDS)}"
    reason = candidates.why_unavailable(op, backend, device, dtype=dtypes.to_torch(dtype))
    if reason is not None:
        return reason
    variable = EMULATORS.get(backend)
    if torch.device(device).type == "cpu" and variable and os.environ.get(variable) == "1":
        return f"backend '{backend}' runs in an interpreter here ({variable}=1): not timed"
    return None


def pairs(ops: Sequence[str] | None = None, names: Sequence[str] | None = None, device="cpu",
          dtype: str = "float32") -> list[tuple[str, str]]:
    """The (op, backend) pairs measured here, in contract and backend order."""
    return [(op, b) for op in (ops or backends.OPS) for b in (names or backends.BACKEND_NAMES)
            if op in backends.BACKENDS[b].op_names() and why_not_timed(op, b, device, dtype) is None]


def closures(op: str, backend: str, cfg: OverheadConfig = OverheadConfig()) -> tuple[Callable, Callable, Callable]:
    """(raw, checked, checks): zero-argument forwards of the tiny case, same inputs, no
    graph; ``checks`` is the checked path around a kernel that does nothing (the
    wrapper's own cost, without the noise of a difference of two kernel timings)."""
    impl = backends.get(op, backend)
    inputs = backends.OPS[op].make_inputs(TINY_CASES[op], dtypes.to_torch(cfg.dtype), cfg.device, cfg.seed)
    raw_fn = impl.fn
    checks_only = replace(impl, fn=lambda *args, **kwargs: None)

    def raw():
        with torch.no_grad():
            return raw_fn(**inputs)

    def checked():
        with torch.no_grad():
            return impl(**inputs)

    def checks():
        with torch.no_grad():
            return checks_only(**inputs)

    return raw, checked, checks


def measure(op: str, backend: str, cfg: OverheadConfig = OverheadConfig(), clock=None) -> dict:
    """Time raw, checked and the checks alone interleaved; the record (without env)."""
    case = TINY_CASES[op]
    rec = {"kind": "overhead", "op": op, "backend": backend, "case": case, "case_id": case_id(case),
           "dtype": cfg.dtype, "device": cfg.device, "mode": "forward", "status": None, "error": None}
    reason = why_not_timed(op, backend, cfg.device, cfg.dtype)
    if reason is not None:
        return dict(rec, status="unavailable", error=reason)
    raw, checked, checks = closures(op, backend, cfg)
    sync = backends.BACKENDS[backend].synchronize
    device = torch.device(cfg.device)
    before = env.cpu_times()
    timed = time_interleaved([Candidate(f.__name__, f, lambda: sync(device)) for f in (raw, checked, checks)],
                             cfg.timing, clock=clock)
    steal = env.steal_fraction(before, env.cpu_times())
    r, c, k = (timed[n].samples_ns for n in ("raw", "checked", "checks"))
    raw_ns, checked_ns = summarize(r)["median"], summarize(c)["median"]
    lo, hi = ratio_interval(c, r)
    return dict(rec, status="ok", raw_ns=raw_ns, checked_ns=checked_ns, overhead_ns=checked_ns - raw_ns,
                overhead_ci95_ns=[raw_ns * (lo - 1.0), raw_ns * (hi - 1.0)], checks_ns=summarize(k)["median"],
                raw_samples_ns=r, checked_samples_ns=c, checks_samples_ns=k,
                steal_pct=None if steal is None else 100.0 * steal)


def run(cfg: OverheadConfig = OverheadConfig(), ops: Sequence[str] | None = None,
        names: Sequence[str] | None = None, out=None, log: Callable[[str], None] = lambda msg: None,
        clock=None) -> list[dict]:
    """Measure every pair (``pairs``); append each record to ``out`` as it is done.
    ``clock``: bench.timing's CpuClock by default (tests pass a fake)."""
    run_id = results.new_run_id()
    fingerprint = env.environment(cfg.device)
    records = []
    for op, backend in pairs(ops, names, cfg.device, cfg.dtype):
        log(f"{op}[{backend}]: raw vs checked")
        rec = measure(op, backend, cfg, clock=clock)
        rec = results.new_record("overhead", run_id=run_id, env=fingerprint, **{k: v for k, v in rec.items() if k != "kind"})
        if out is not None:
            results.append(out, rec)
        records.append(rec)
    return records
