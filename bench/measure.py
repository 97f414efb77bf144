"""The one measurement path of ops and models: a group of prepared closures timed
interleaved (bench/timing.py), each candidate's contention judged (bench/load.py), the
group timed once more after a pause when other work disturbed it, a candidate that
raises recorded as an error while the others are timed again without it, and the
speedups against the baselines (``bench.results.BASELINES``) from the same timing.

    timed = measure.group({"torch": (fn, sync), "numba_cpu": (fn2, sync)}, cfg)
    timed.fields["numba_cpu"]   # samples_ns, median_ns, q1_ns, q3_ns, iqr_ns, rel_iqr, reps,
                                # rounds, stop_reason, steal_pct, load, speedup_vs_<base>(_ci95)
    timed.errors                # {name: why} for the candidates that raised
    timed.measurements          # {name: bench.timing.Measurement}: the raw samples

The op runner (bench/ops/runner.py) adds the roofline figures, the model bench
(bench/modelbench/bench.py) tokens per second; what a record means beyond the timing is
theirs, how a group is timed is here.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from typing import Callable, Mapping

import torch

from bench import env, load
from bench.results import BASELINES
from bench.timing import Candidate, CpuClock, Measurement, TimingConfig, ratio_interval, summarize, time_interleaved


@dataclass(frozen=True)
class MeasureConfig:
    timing: TimingConfig = field(default_factory=TimingConfig)
    load: load.LoadConfig = field(default_factory=load.LoadConfig)
    cpu: bool = True  # CPU timing: contention is judged from the process's CPU time


@dataclass
class Timed:
    measurements: dict[str, Measurement] = field(default_factory=dict)
    fields: dict[str, dict] = field(default_factory=dict)  # per candidate: what its record gets
    errors: dict[str, str] = field(default_factory=dict)  # per candidate that raised: why


class CandidateError(Exception):
    """A candidate's closure raised during timing."""

    def __init__(self, name: str, exc: BaseException):
        super().__init__(f"{name}: {type(exc).__name__}: {exc}")
        self.name = name


def error_text(exc: BaseException) -> str:
    """The last line of an exception, as records store it (their ``error`` field)."""
    return traceback.format_exception_only(type(exc), exc)[-1].strip()[:2000]


def _guarded(name: str, fn: Callable) -> Callable:
    def call():
        try:
            return fn()
        except Exception as exc:
            raise CandidateError(name, exc) from exc

    return call


def _timed_once(closures: Mapping, cfg: MeasureConfig, clock, watch, errors: dict) -> tuple[dict, float | None]:
    """Interleaved timing; a candidate that raises is dropped (named in ``errors``) and the
    others are timed again without it."""
    live = dict(closures)
    while live:
        cands = [Candidate(n, _guarded(n, fn), sync) for n, (fn, sync) in live.items()]
        try:
            before = env.cpu_times()
            timed = time_interleaved(cands, cfg.timing, clock=clock, watch=watch)
            return timed, env.steal_fraction(before, env.cpu_times())
        except CandidateError as exc:
            errors[exc.name] = f"timing: {error_text(exc.__cause__)}"
            del live[exc.name]
    return {}, None


def group(closures: Mapping[str, tuple[Callable[[], object], Callable[[], None]]], cfg: MeasureConfig = MeasureConfig(),
          clock=None, log: Callable[[str], None] = lambda msg: None, sleep: Callable[[float], None] = time.sleep,
          watch: Callable[[], object] = load.read) -> Timed:
    """Time ``{name: (closure, sync)}`` as one interleaved group; see the module docstring.
    ``clock``, ``sleep`` and ``watch`` (bench.load.read) are the tests' seams."""
    clock = clock or CpuClock()
    out = Timed()
    threads = torch.get_num_threads()
    timed, steal = _timed_once(closures, cfg, clock, watch, out.errors)
    loads = {n: load.assess(m.readings, threads, cpu=cfg.cpu, cfg=cfg.load) for n, m in timed.items()}
    remeasured = False
    if any(load.disturbed(v) for v in loads.values()):
        log(f"disturbed by other work; again in {cfg.load.pause_s:g} s")
        sleep(cfg.load.pause_s)
        timed, steal = _timed_once({n: closures[n] for n in timed}, cfg, clock, watch, out.errors)
        loads = {n: load.assess(m.readings, threads, cpu=cfg.cpu, cfg=cfg.load) for n, m in timed.items()}
        remeasured = True
    medians = {}
    for name, m in timed.items():
        s = summarize(m.samples_ns)
        medians[name] = s["median"]
        rec = dict(samples_ns=m.samples_ns, median_ns=s["median"], q1_ns=s["q1"], q3_ns=s["q3"], iqr_ns=s["iqr"],
                   rel_iqr=s["rel_iqr"], reps=s["n"], rounds=m.rounds, stop_reason=m.stop_reason,
                   steal_pct=None if steal is None else 100.0 * steal,
                   load=None if loads[name] is None else dict(loads[name], **({"remeasured": True} if remeasured else {})))
        if m.host_ns:
            rec.update(host_ns=m.host_ns, host_median_ns=summarize(m.host_ns)["median"])
        out.fields[name] = rec
    for base in BASELINES:
        for name in timed:
            rec = out.fields[name]
            rec[f"speedup_vs_{base}"] = medians[base] / medians[name] if base in medians else None
            rec[f"speedup_vs_{base}_ci95"] = (list(ratio_interval(timed[base].samples_ns, timed[name].samples_ns))
                                              if base in medians and base != name else None)
    out.measurements = timed
    return out
