"""asv benchmarks: one class per op, parametrised by case, mode and implementation.

They time the same closures as ``arsenal ops`` and pytest-benchmark
(``bench.prepare.prepare(...).fn``) after the same correctness gate
(``bench.runner.Gate``): an unavailable pair raises asv's SkipNotImplemented with the
reason; an incorrect pair fails in setup and is never timed. ``track_compile_seconds``
records the first call's JIT / compile / autotune cost as its own figure.

Environment variables (asv passes the caller's environment to the benchmarks):
``ARSENAL_SUITE`` (default quick), ``ARSENAL_MODES`` (default forward,forward_backward),
``ARSENAL_DEVICE`` (default cuda when present, else cpu), ``ARSENAL_NAMES`` (comma list
of backends and peers; default every candidate of each op), ``ARSENAL_THREADS`` (torch's
and Numba's thread count, pinned; default every core).

asv re-runs ``setup`` before every timed sample; the prepared closure of the current
pair is kept (one at a time), so a re-run costs nothing and torch.compile or a Numba
JIT runs once per pair, not once per sample.
"""

import os

import torch
from asv_runner.benchmarks.mark import SkipNotImplemented

import backends
from backends.registry import DTYPE_NAMES
from bench import env
from bench.prepare import Unavailable, candidates, prepare, why_unavailable
from bench.runner import Gate
from suites.op_shapes import DEFAULT_MODES, case_id, cases

SUITE = os.environ.get("ARSENAL_SUITE", "quick")
MODES = tuple(os.environ.get("ARSENAL_MODES", ",".join(DEFAULT_MODES)).split(","))
DEVICE = os.environ.get("ARSENAL_DEVICE", "cuda" if torch.cuda.is_available() else "cpu")
NAMES = os.environ.get("ARSENAL_NAMES")
# thread counts pinned (every core by default) and malloc thresholds fixed (bench/env.py)
THREADS = env.pin_process(int(os.environ.get("ARSENAL_THREADS", "0")) or None)
DTYPE = torch.float32

_GATE = Gate(DEVICE)
_CURRENT: dict = {}  # {key: Prepared}: the pair being benchmarked


def _prepared(op: str, case: dict, mode: str, name: str):
    key = (op, case_id(case), mode, name)
    if key not in _CURRENT:
        _CURRENT.clear()  # release the previous pair's tensors first
        reason = why_unavailable(op, name, DEVICE, case=case, dtype=DTYPE, mode=mode)
        if reason is not None:
            raise SkipNotImplemented(reason)
        checked = _GATE(op, name, case, DTYPE_NAMES[DTYPE], grad=mode != "forward")
        if not checked.ok:
            raise AssertionError(f"{op}[{name}] is incorrect, not timed: {'; '.join(checked.problems[:3])}")
        try:
            _CURRENT[key] = prepare(op, name, case, DTYPE, DEVICE, mode)
        except Unavailable as exc:
            raise SkipNotImplemented(str(exc)) from exc
    return _CURRENT[key]


class _OpBenchmark:
    """Base of the per-op classes below (private: asv does not collect it)."""

    op: str
    param_names = ["case", "mode", "name"]
    timeout = 1200.0  # torch.compile of a long sequential loop takes minutes on a small CPU

    def setup(self, case, mode, name):
        self.prepared = _prepared(self.op, self.cases[case], mode, name)

    def time_op(self, case, mode, name):
        self.prepared.fn()
        self.prepared.sync()

    def track_compile_seconds(self, case, mode, name):
        return self.prepared.compile_seconds

    track_compile_seconds.unit = "seconds"


def _op_class(op: str) -> type:
    by_id = {case_id(c): c for c in cases(SUITE, op, DEVICE)}
    title = "".join(part.title() for part in op.split("_"))
    return type(title, (_OpBenchmark,), {
        "op": op,
        "cases": by_id,
        "params": [list(by_id), list(MODES), [n for n in candidates(op) if NAMES is None or n in NAMES.split(",")]],
        "__doc__": f"{op}: {SUITE} suite, every backend and peer.",
    })


for _op in backends.OPS:
    if cases(SUITE, _op, DEVICE):
        _cls = _op_class(_op)
        globals()[_cls.__name__] = _cls
