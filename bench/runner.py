"""The op benchmark run: for each group (op, case, dtype, mode) and its candidates
(backends and peers), gate, prepare, time interleaved, derive, append.

The correctness gate (``Gate``) is ``backends.check.check_pair`` with the callable that
is timed, on:
- the benchmark case itself when it moves at most ``RunConfig.gate_max_elements``
  float32 elements (the contract's bytes / 4): the forward against the float64
  reference, and, when the mode runs a backward, forward and gradients against the
  ORACLE, the torch backend run in float64. The sequential reference's autograd graph
  grows with T and its backward costs O(T^2) (a parallel_scan of B=4, T=1024, D=256
  takes over a minute), while the torch backend's float64 backward is parallel and
  cheap, and is itself held to the reference by the test suite (test_matrix at float64,
  test_gradcheck). ``RunConfig.gate_case_grad`` (``arsenal ops --strict-gate``) uses the
  reference there too, at its cost;
- the op's test cases, forward and, when the mode runs a backward, gradients, against
  the reference: all of them for a registry backend (its kernels compile once; the
  small shapes catch edge cases); for a peer (torch_compile specialises a graph per
  shape and pays a compile for each) only the largest one, and only when gradients
  are needed or the benchmark case is too large to check.
A check's result is reused for the same (op, implementation, dtype, gradients, case,
oracle). A pair that fails is recorded with status "incorrect" and its problems, and
never timed. The gradient check at the benchmark size matters: minGRU's log-space
parallel_scan passes at T=300 but its da is 1.27x over the float32 tolerance at T=1024.

Every record of a group comes from one interleaved timing (``bench.timing``), so its
speedups (median of the baseline / median of the candidate) are ratios from the same
minutes of the same run.
"""

from __future__ import annotations

import math
import os
import time
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

import backends
from backends.check import CheckResult, check_pair
from backends.registry import DTYPES_BY_NAME
from bench import env, results, roofline
from bench import prepare as prep
from bench.timing import Candidate, CpuClock, CudaClock, TimingConfig, ratio_interval, summarize, time_interleaved
from suites import op_shapes

BASELINES = ("torch", "torch_compile")  # speedups are reported against these
REFERENCE = "reference"  # the contract's float64 reference
ORACLE = "torch"  # the backend run in float64 where the reference's backward is too slow (see above)


@dataclass(frozen=True)
class RunConfig:
    device: str = "cpu"
    seed: int = 0
    gate_max_elements: int = 1 << 24  # the benchmark case joins the gate up to this size (case_elements)
    gate_case_grad: bool = False  # benchmark-case gradients against the reference, not the oracle (O(T^2))
    timing: TimingConfig = field(default_factory=TimingConfig)


@dataclass(frozen=True)
class Group:
    """The candidates timed together: one op, case, dtype and mode."""

    op: str
    case: dict
    dtype: str
    mode: str
    names: tuple[str, ...]


def plan(ops: Sequence[str], names: Sequence[str] | None, cases: Callable[[str], list[dict]],
         dtypes: Sequence[str], modes: Sequence[str]) -> list[Group]:
    """Groups for every op, case, dtype and mode; ``names`` None means every candidate
    of the op (``bench.prepare.candidates``), otherwise those of them the op has."""
    groups = []
    for op in ops:
        have = prep.candidates(op)
        chosen = tuple(have) if names is None else tuple(n for n in names if n in have)
        if not chosen:
            continue
        for case in cases(op):
            for dtype in dtypes:
                for mode in modes:
                    groups.append(Group(op, dict(case), dtype, mode, chosen))
    return groups


def case_elements(op: str, case: dict) -> float:
    """The size of a case: float32 elements its forward must move (the contract's bytes)."""
    return backends.OPS[op].bytes(case, torch.float32, "forward") / 4


@dataclass
class GateResult:
    ok: bool
    cases: list  # the checks run: {"case": case dict, "grad": gradients checked}
    forward_error: float | None
    grad_error: float | None
    problems: list
    seconds: float

    def record(self) -> dict:
        return {"ok": self.ok, "cases": self.cases, "forward_error": self.forward_error,
                "grad_error": self.grad_error, "problems": self.problems[:5], "seconds": self.seconds}


class Gate:
    """check_pair over the cases described in the module docstring, memoised."""

    def __init__(self, device="cpu", max_elements: int = 1 << 24, seed: int = 0, case_grad: bool = False):
        self.device, self.max_elements, self.seed, self.case_grad = device, max_elements, seed, case_grad
        self._memo: dict[tuple, GateResult] = {}

    def checks(self, op: str, name: str, case: dict, grad: bool) -> list[tuple[dict, bool, str]]:
        """The (case, gradients?, REFERENCE or ORACLE) checks the gate runs for this pair and mode."""
        tests = list(backends.OPS[op].test_cases)
        out = []
        if case_elements(op, case) <= self.max_elements:
            out.append((case, False, REFERENCE))
            if grad:
                out.append((case, True, REFERENCE if self.case_grad else ORACLE))
        if name in backends.BACKENDS:
            return [(c, grad, REFERENCE) for c in tests] + out
        if grad or not out:
            out.insert(0, (max(tests, key=lambda c: case_elements(op, c)), grad, REFERENCE))
        return out

    def _check(self, op, name, case, dtype, grad, against) -> GateResult:
        key = (op, name, dtype, grad, op_shapes.case_id(case), against)
        if key not in self._memo:
            fn = None if name in backends.BACKENDS else prep.implementation(op, name)
            oracle = backends.get(op, ORACLE) if against == ORACLE else None
            self.add(check_pair(op, name, case, DTYPES_BY_NAME[dtype], self.device, seed=self.seed, grad=grad, fn=fn,
                                oracle=oracle), grad, against)
        return self._memo[key]

    def add(self, r: CheckResult, grad: bool, against: str = REFERENCE) -> None:
        """Keep a check's result for reuse (``arsenal run`` checks every pair first)."""
        self._memo[(r.op, r.backend, r.dtype, grad, op_shapes.case_id(r.case), against)] = GateResult(
            r.ok, [{"case": r.case, "grad": grad, "against": against}], r.forward_error, r.grad_error,
            [f"{op_shapes.case_id(r.case)}{'' if against == REFERENCE else ' vs ' + against}: {p}"
             for p in r.problems], r.seconds)

    def __call__(self, op: str, name: str, case: dict, dtype: str, grad: bool) -> GateResult:
        parts = [self._check(op, name, c, dtype, g, against) for c, g, against in self.checks(op, name, case, grad)]
        fwd = [p.forward_error for p in parts if p.forward_error is not None and not math.isnan(p.forward_error)]
        grads = [p.grad_error for p in parts if p.grad_error is not None]
        return GateResult(ok=all(p.ok for p in parts), cases=[c for p in parts for c in p.cases],
                          forward_error=max(fwd) if fwd else None, grad_error=max(grads) if grads else None,
                          problems=[q for p in parts for q in p.problems], seconds=sum(p.seconds for p in parts))


class CandidateError(Exception):
    """A candidate's closure raised during timing."""

    def __init__(self, name: str, exc: BaseException):
        super().__init__(f"{name}: {type(exc).__name__}: {exc}")
        self.name = name


def _guarded(name: str, fn: Callable) -> Callable:
    def call():
        try:
            return fn()
        except Exception as exc:
            raise CandidateError(name, exc) from exc

    return call


def _error_text(exc: BaseException) -> str:
    last = traceback.format_exception_only(type(exc), exc)[-1].strip()
    return last[:2000]


class Runner:
    """Runs groups and appends one record per candidate to ``out`` (when given)."""

    def __init__(self, cfg: RunConfig = RunConfig(), out=None, ceilings: dict | None = None,
                 log: Callable[[str], None] = lambda msg: None):
        self.cfg, self.out, self.log = cfg, out, log
        self.ceilings = ceilings if ceilings is not None else roofline.ceilings(cfg.device)
        self.gate = Gate(cfg.device, cfg.gate_max_elements, cfg.seed, cfg.gate_case_grad)
        self.run_id = uuid.uuid4().hex[:12]
        self.groups_done = 0
        self.clock = CudaClock(cfg.device) if torch.device(cfg.device).type == "cuda" else CpuClock()

    def _base(self, group: Group, name: str) -> dict:
        return {"schema": results.SCHEMA_VERSION, "run_id": self.run_id, "group": self.groups_done,
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "op": group.op, "backend": name,
                "variant": None, "case": group.case, "case_id": op_shapes.case_id(group.case),
                "dtype": group.dtype, "mode": group.mode, "device": self.cfg.device, "status": None,
                "error": None, "compile_seconds": None, "gate": None}

    def run_group(self, group: Group) -> list[dict]:
        dtype = DTYPES_BY_NAME[group.dtype]
        records = {name: self._base(group, name) for name in group.names}
        prepared = {}
        for name in group.names:
            rec = records[name]
            reason = prep.why_unavailable(group.op, name, self.cfg.device, case=group.case, dtype=dtype,
                                          mode=group.mode)
            if reason is not None:
                rec.update(status="unavailable", error=reason)
                continue
            self.log(f"{group.op}[{name}] {group.dtype} {group.mode}: gate")
            try:
                gate = self.gate(group.op, name, group.case, group.dtype, grad=group.mode != "forward")
            except Exception as exc:  # the check itself could not run (an adapter that fails to load)
                rec.update(status="error", error=f"gate: {_error_text(exc)}")
                continue
            rec["gate"] = gate.record()
            if not gate.ok:
                rec.update(status="incorrect", error="; ".join(gate.problems[:3]))
                continue
            self.log(f"{group.op}[{name}] {group.dtype} {group.mode}: prepare")
            try:
                p = prep.prepare(group.op, name, group.case, dtype, self.cfg.device, group.mode, seed=self.cfg.seed)
            except prep.Unavailable as exc:
                rec.update(status="unavailable", error=str(exc))
                continue
            except Exception as exc:
                rec.update(status="error", error=f"prepare: {_error_text(exc)}")
                continue
            rec["compile_seconds"] = p.compile_seconds
            prepared[name] = p
        self.log(f"{group.op} {op_shapes.case_id(group.case)} {group.dtype} {group.mode}: timing {', '.join(prepared)}")
        timed = self._time(prepared, records)
        self._derive(group, timed, records)
        out = [records[name] for name in group.names]
        env_fp = env.environment(self.cfg.device)
        for rec in out:
            rec["env"] = env_fp
            if self.out is not None:
                results.append(self.out, rec)
        self.groups_done += 1
        return out

    def _time(self, prepared: dict, records: dict) -> dict:
        """Interleaved timing; a candidate that raises is recorded as an error and the
        others are timed again without it."""
        live = dict(prepared)
        while live:
            cands = [Candidate(n, _guarded(n, p.fn), p.sync) for n, p in live.items()]
            try:
                before = env.cpu_times()
                timed = time_interleaved(cands, self.cfg.timing, clock=self.clock)
                steal = env.steal_fraction(before, env.cpu_times())
                for name in timed:
                    records[name]["steal_pct"] = None if steal is None else 100.0 * steal
                return timed
            except CandidateError as exc:
                records[exc.name].update(status="error", error=f"timing: {_error_text(exc.__cause__)}")
                del live[exc.name]
        return {}

    def _busy_note(self) -> str:
        load, cores = self.ceilings.get("loadavg"), os.cpu_count() or 1
        if load and load[0] > cores:
            return (f", or the ceilings are low (measured at load average {load[0]} on {cores} cores: "
                    "arsenal roofline --refresh on a quiet machine)")
        return ""

    def _derive(self, group: Group, timed: dict, records: dict) -> None:
        spec = backends.OPS[group.op]
        dtype = DTYPES_BY_NAME[group.dtype]
        flops = float(spec.flops(group.case, group.mode))
        nbytes = float(spec.bytes(group.case, dtype, group.mode))
        medians = {}
        for name, m in timed.items():
            rec = records[name]
            s = summarize(m.samples_ns)
            rec.update(samples_ns=m.samples_ns, host_ns=m.host_ns, median_ns=s["median"], q1_ns=s["q1"],
                       q3_ns=s["q3"], iqr_ns=s["iqr"], rel_iqr=s["rel_iqr"], reps=s["n"], rounds=m.rounds,
                       stop_reason=m.stop_reason, flops=flops, bytes=nbytes)
            if m.host_ns:
                rec["host_median_ns"] = summarize(m.host_ns)["median"]
            rec.update(roofline.derive(self.ceilings, flops, nbytes, s["median"] / 1e9, group.dtype))
            if rec["pct_roofline"] > 100.0:
                rec.update(status="wrong_model",
                           error=f"{rec['pct_roofline']:.0f}% of the roofline: the contract's bytes or flops "
                                 f"model of {group.op} is wrong for this case{self._busy_note()}")
            else:
                rec["status"] = "ok"
            medians[name] = s["median"]
        for base in BASELINES:
            for name in timed:
                rec = records[name]
                rec[f"speedup_vs_{base}"] = medians[base] / medians[name] if base in medians else None
                rec[f"speedup_vs_{base}_ci95"] = (list(ratio_interval(timed[base].samples_ns, timed[name].samples_ns))
                                                  if base in medians and base != name else None)

