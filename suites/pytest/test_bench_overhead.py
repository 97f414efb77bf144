"""pytest-benchmark of the registry's argument checks: ``pytest suites/pytest -k overhead
--benchmark-only``.

For each op's tiny case (``bench.ops.overhead.TINY_CASES``) and each backend that runs here,
the raw implementation (``impl.fn``), the checked one (``impl``) and the checked path
around a no-op kernel (``checks``) are benchmarked in one group, so pytest-benchmark's
table sets them side by side: checked - raw, and checks directly, are what the checks
cost per call. The closures are ``bench.ops.overhead.closures``, the ones
``arsenal overhead`` and the asv suite time. An interpreted or unavailable backend is
skipped with the reason.
"""

import time

import pytest

import backends
from bench import load
from bench.ops import overhead
from bench.timing import TimingConfig

PAIRS = [(op, b) for op in overhead.TINY_CASES for b in backends.BACKEND_NAMES
         if op in backends.BACKENDS[b].op_names()]


@pytest.mark.parametrize("path", ["raw", "checked", "checks"])
@pytest.mark.parametrize("op, backend", PAIRS, ids=[f"overhead-{op}-{b}" for op, b in PAIRS])
def test_call(benchmark, request, op, backend, path):
    device = request.config.getoption("arsenal_device")
    reason = overhead.why_not_timed(op, backend, device)
    if reason is not None:
        pytest.skip(reason)
    cfg = overhead.OverheadConfig(device=device)
    fn = dict(zip(("raw", "checked", "checks"), overhead.closures(op, backend, cfg)))[path]
    sync = backends.BACKENDS[backend].synchronize
    benchmark.group = f"overhead {op} {backend}"
    benchmark.extra_info.update(op=op, backend=backend, path=path, case=overhead.TINY_CASES[op], device=device,
                                dtype=cfg.dtype)
    fn()  # warm: Numba's cache load, the first call's allocations
    time.sleep(TimingConfig().settle_s)  # let the previous benchmark's OpenMP workers stop spinning
    with load.watched(device) as seen:
        benchmark(lambda: (fn(), sync(device)))
    benchmark.extra_info["load"] = seen
