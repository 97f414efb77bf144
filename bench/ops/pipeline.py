"""One planned item made ready to time: the correctness gate, then the prepared closure.

``arsenal ops`` (bench.ops.runner), the pytest-benchmark file and the asv suite all call
``gate_then_prepare``; each maps the outcome to its own vocabulary (a record's status, a
skip or failure of a test, asv's SkipNotImplemented).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from bench.ops import prepare as prep
from bench.measure import error_text  # noqa: F401  (re-exported: the op path names errors so)
from bench.ops.gate import Gate, GateResult
from bench.ops.plan import Item

READY, UNAVAILABLE, INCORRECT, ERROR = "ready", "unavailable", "incorrect", "error"


@dataclass
class Outcome:
    status: str  # READY, or the record status: UNAVAILABLE, INCORRECT, ERROR
    error: str | None = None  # why, for every status but READY
    gate: GateResult | None = None  # None when the gate did not run
    prepared: prep.Prepared | None = None  # the closure to time (READY only)


def gate_then_prepare(gate: Gate, item: Item, seed: int = 0, log: Callable[[str], None] = lambda msg: None) -> Outcome:
    """A pair that fails the gate is never prepared (so never timed)."""
    if item.reason is not None:
        return Outcome(UNAVAILABLE, item.reason)
    label = f"{item.op}[{item.name}] {item.case_id} {item.mode}"
    log(f"{label}: gate")
    try:
        checked = gate(item.op, item.name, item.case, item.dtype, grad=item.grad)
    except Exception as exc:  # the check itself could not run (an adapter that fails to load)
        return Outcome(ERROR, f"gate: {error_text(exc)}")
    if not checked.ok:
        return Outcome(INCORRECT, "; ".join(checked.problems[:3]), checked)
    log(f"{label}: prepare")
    try:
        p = prep.prepare(item.op, item.name, item.case, item.dtype, item.device, item.mode, seed=seed)
    except prep.Unavailable as exc:
        return Outcome(UNAVAILABLE, str(exc), checked)
    except Exception as exc:
        return Outcome(ERROR, f"prepare: {error_text(exc)}", checked)
    return Outcome(READY, None, checked, p)
