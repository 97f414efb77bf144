"""The correctness gate of the benchmarks: a pair is timed only after it passed.

The gate is ``backends.check.check_pair`` with the callable that is timed, on:
- the benchmark case itself when it moves at most ``max_elements`` float32 elements (the
  contract's bytes / 4): the forward against the float64 reference, and, when the mode
  runs a backward, forward and gradients against the ORACLE, the torch backend run in
  float64. The sequential reference's autograd graph grows with T and its backward costs
  O(T^2) (a parallel_scan of B=4, T=1024, D=256 takes over a minute), while the torch
  backend's float64 backward is parallel and cheap, and is itself held to the reference
  by the test suite (test_matrix at float64, test_gradcheck). ``case_grad`` (``arsenal
  ops --strict-gate``) uses the reference there too, at its cost;
- the op's test cases, forward and, when the mode runs a backward, gradients, against
  the reference: all of them for a registry backend (its kernels compile once; the
  small shapes catch edge cases); for a peer (torch_compile specialises a graph per
  shape and pays a compile for each) only the largest one, and only when gradients
  are needed or the benchmark case is too large to check.
A check's result is reused for the same (op, implementation, dtype, gradients, case,
oracle). The gradient check at the benchmark size matters: minGRU's log-space
parallel_scan passes at T=300 but its da is 1.27x over the float32 tolerance at T=1024.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

import backends
from backends.check import CheckResult, check_pair
from bench.ops import candidates
from bench.ops.cases import case_id
from bench.ops.dtypes import name as dtype_name

REFERENCE = "reference"  # the contract's float64 reference
ORACLE = "torch"  # the backend run in float64 where the reference's backward is too slow (see above)


def case_elements(op: str, case: dict) -> float:
    """The size of a case: float32 elements its forward must move (the contract's bytes)."""
    return backends.OPS[op].bytes(case, torch.float32, "forward") / 4


@dataclass
class GateResult:
    ok: bool
    cases: list  # the checks run: {"case": case dict, "grad": gradients checked, "against": ...}
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
        if candidates.is_backend(name):
            return [(c, grad, REFERENCE) for c in tests] + out
        # a peer is checked on the largest contract case it accepts (its ``fits``): torch_rnn
        # takes elman_scan's rung-0 form only, torch_compile refuses long unrolled loops
        fitting = [c for c in tests if candidates.get(name).fits(op, c) is None] or tests
        if grad or not out:
            out.insert(0, (max(fitting, key=lambda c: case_elements(op, c)), grad, REFERENCE))
        return out

    def _check(self, op, name, case, dtype: torch.dtype, grad, against) -> GateResult:
        key = (op, name, dtype_name(dtype), grad, case_id(case), against)
        if key not in self._memo:
            fn = candidates.checked_callable(op, name)
            oracle = backends.get(op, ORACLE) if against == ORACLE else None
            self.add(check_pair(op, name, case, dtype, self.device, seed=self.seed, grad=grad, fn=fn,
                                oracle=oracle), grad, against)
        return self._memo[key]

    def add(self, r: CheckResult, grad: bool, against: str = REFERENCE) -> None:
        """Keep a check's result for reuse (``arsenal run`` checks every pair first)."""
        self._memo[(r.op, r.backend, r.dtype, grad, case_id(r.case), against)] = GateResult(
            r.ok, [{"case": r.case, "grad": grad, "against": against}], r.forward_error, r.grad_error,
            [f"{case_id(r.case)}{'' if against == REFERENCE else ' vs ' + against}: {p}" for p in r.problems],
            r.seconds)

    def __call__(self, op: str, name: str, case: dict, dtype: torch.dtype, grad: bool) -> GateResult:
        parts = [self._check(op, name, c, dtype, g, against) for c, g, against in self.checks(op, name, case, grad)]
        fwd = [p.forward_error for p in parts if p.forward_error is not None and not math.isnan(p.forward_error)]
        grads = [p.grad_error for p in parts if p.grad_error is not None]
        return GateResult(ok=all(p.ok for p in parts), cases=[c for p in parts for c in p.cases],
                          forward_error=max(fwd) if fwd else None, grad_error=max(grads) if grads else None,
                          problems=[q for p in parts for q in p.problems], seconds=sum(p.seconds for p in parts))
