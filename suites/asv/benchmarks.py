"""asv benchmarks: one class per op, parametrised by case, mode and implementation.

The parameters come from the harness's planner (``bench.ops.plan``), and each pair is made
ready by the same path as ``arsenal ops`` and pytest-benchmark
(``bench.ops.pipeline.gate_then_prepare``: the correctness gate, then the prepared closure):
an unavailable pair raises asv's SkipNotImplemented with the reason; an incorrect pair
fails in setup and is never timed. ``track_compile_seconds`` records the first call's
JIT / compile / autotune cost as its own figure.

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
from bench import env
from bench.ops import pipeline, plan
from bench.ops.gate import Gate
from suites.op_shapes import DEFAULT_MODES

SUITE = os.environ.get("ARSENAL_SUITE", "quick")
MODES = tuple(os.environ.get("ARSENAL_MODES", ",".join(DEFAULT_MODES)).split(","))
DEVICE = os.environ.get("ARSENAL_DEVICE", "cuda" if torch.cuda.is_available() else "cpu")
NAMES = os.environ.get("ARSENAL_NAMES")
# thread counts pinned (every core by default) and malloc thresholds fixed (bench/env.py)
THREADS = env.pin_process(int(os.environ.get("ARSENAL_THREADS", "0")) or None)

PLANNED = plan.items(plan.Selection(names=tuple(NAMES.split(",")) if NAMES else None, peers=True,
                                    dtypes=(torch.float32,), modes=MODES, suite=SUITE, device=DEVICE))
_ITEMS = plan.by_key(PLANNED)  # {(op, case_id, mode, name): item}
_GATE = Gate(DEVICE)
_CURRENT: dict = {}  # {key: Prepared}: the pair being benchmarked


def _prepared(key: tuple):
    if key not in _CURRENT:
        _CURRENT.clear()  # release the previous pair's tensors first
        got = pipeline.gate_then_prepare(_GATE, _ITEMS[key])
        if got.status == pipeline.UNAVAILABLE:
            raise SkipNotImplemented(got.error)
        if got.status != pipeline.READY:
            raise AssertionError(f"{key[0]}[{key[3]}] is {got.status}, not timed: {got.error}")
        _CURRENT[key] = got.prepared
    return _CURRENT[key]


class _OpBenchmark:
    """Base of the per-op classes below (private: asv does not collect it)."""

    op: str
    param_names = ["case", "mode", "name"]
    timeout = 1200.0  # torch.compile of a long sequential loop takes minutes on a small CPU

    def setup(self, case, mode, name):
        self.prepared = _prepared((self.op, case, mode, name))

    def time_op(self, case, mode, name):
        self.prepared.fn()
        self.prepared.sync()

    def track_compile_seconds(self, case, mode, name):
        return self.prepared.compile_seconds

    track_compile_seconds.unit = "seconds"


def _op_class(op: str, items: list) -> type:
    """``cases`` maps each case id to its case (the planned items carry both)."""
    title = "".join(part.title() for part in op.split("_"))
    return type(title, (_OpBenchmark,), {
        "op": op,
        "cases": {i.case_id: i.case for i in items},
        "params": [list(dict.fromkeys(i.case_id for i in items)), list(MODES),
                   list(dict.fromkeys(i.name for i in items))],
        "__doc__": f"{op}: {SUITE} suite, every backend and peer.",
    })


for _op in backends.OPS:
    _mine = [i for i in PLANNED if i.op == _op]
    if _mine:
        _cls = _op_class(_op, _mine)
        globals()[_cls.__name__] = _cls
