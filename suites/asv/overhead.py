"""asv benchmarks of the registry's argument checks: raw (``impl.fn``) against checked
(``impl``) per op and backend, on each op's tiny case (``bench.ops.overhead``: the closures
``arsenal overhead`` and pytest-benchmark time). An interpreted or unavailable backend
raises asv's SkipNotImplemented with the reason. ``ARSENAL_DEVICE`` (default cuda when
present, else cpu) and ``ARSENAL_THREADS`` as in benchmarks.py.
"""

import os

import torch
from asv_runner.benchmarks.mark import SkipNotImplemented

import backends
from bench import env
from bench.ops import overhead

DEVICE = os.environ.get("ARSENAL_DEVICE", "cuda" if torch.cuda.is_available() else "cpu")
env.pin_process(int(os.environ.get("ARSENAL_THREADS", "0")) or None)


class CallOverhead:
    """One tiny forward per (op, backend, path): "raw" (impl.fn), "checked" (impl) or
    "checks" (impl around a no-op kernel: the checks alone)."""

    params = (list(overhead.TINY_CASES), list(backends.BACKEND_NAMES), ["raw", "checked", "checks"])
    param_names = ("op", "backend", "path")

    def setup(self, op, backend, path):
        if op not in backends.BACKENDS[backend].op_names():
            raise SkipNotImplemented(f"backend '{backend}' has no implementation of '{op}'")
        reason = overhead.why_not_timed(op, backend, DEVICE)
        if reason is not None:
            raise SkipNotImplemented(reason)
        closures = overhead.closures(op, backend, overhead.OverheadConfig(device=DEVICE))
        self.fn = dict(zip(("raw", "checked", "checks"), closures))[path]
        self.sync = backends.BACKENDS[backend].synchronize
        self.device = torch.device(DEVICE)
        self.fn()  # warm: Numba's cache load, the first call's allocations

    def time_call(self, op, backend, path):
        self.fn()
        self.sync(self.device)
