"""One benchmark per (op, case, mode, implementation) of the chosen suite; see conftest.py.

Each pair passes the harness's correctness gate (``bench.runner.Gate``: the same
``check_pair`` as the test suite) before it is timed; a failing pair fails its test and
is never timed, an unavailable one is skipped with the reason. The timed callable is
``bench.prepare.prepare(...).fn``, the closure that ``arsenal ops`` and asv time too.
"""

import functools
import time

import pytest
import torch

import backends
from bench import env, roofline
from bench.prepare import candidates, prepare, why_unavailable
from bench.runner import Gate
from bench.timing import TimingConfig
from backends.registry import DTYPE_NAMES, MODES
from suites.op_shapes import case_id, cases

DTYPE = torch.float32


def _names(config, op):
    chosen = config.getoption("arsenal_names")
    have = candidates(op)
    return have if chosen is None else [n for n in chosen.split(",") if n in have]


def pytest_generate_tests(metafunc):
    if "pair" not in metafunc.fixturenames:
        return
    config = metafunc.config
    suite, device = config.getoption("arsenal_suite"), config.getoption("arsenal_device")
    modes = [m for m in config.getoption("arsenal_modes").split(",") if m]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise pytest.UsageError(f"--arsenal-modes: unknown {unknown}; modes are {', '.join(MODES)}")
    pairs, ids = [], []
    for op in backends.OPS:  # blocked order: a group's implementations run one after another
        for case in cases(suite, op, device):
            for mode in modes:
                for name in _names(config, op):
                    pairs.append((op, case, mode, name, device))
                    ids.append(f"{op}-{case_id(case)}-{mode}-{name}")
    metafunc.parametrize("pair", pairs, ids=ids)


@pytest.fixture(scope="session")
def gate(request):
    return Gate(request.config.getoption("arsenal_device"))


@functools.cache
def _ceilings(device):
    return roofline.ceilings(device)


def test_op(benchmark, gate, pair):
    op, case, mode, name, device = pair
    reason = why_unavailable(op, name, device, case=case, dtype=DTYPE, mode=mode)
    if reason is not None:
        pytest.skip(reason)
    checked = gate(op, name, case, DTYPE_NAMES[DTYPE], grad=mode != "forward")
    if not checked.ok:
        pytest.fail(f"incorrect, not timed: {'; '.join(checked.problems[:3])}")
    p = prepare(op, name, case, DTYPE, device, mode)
    spec = backends.OPS[op]
    flops, nbytes = float(spec.flops(case, mode)), float(spec.bytes(case, DTYPE, mode))
    benchmark.group = f"{op} {case_id(case)} {mode}"
    benchmark.extra_info.update(op=op, backend=name, mix={op: name}, case=case, dtype=DTYPE_NAMES[DTYPE], mode=mode,
                                device=device, compile_seconds=p.compile_seconds, flops=flops, bytes=nbytes,
                                threads=env.thread_counts(), gate_forward_error=checked.forward_error,
                                gate_grad_error=checked.grad_error)
    timed = p.fn if torch.device(device).type == "cpu" else (lambda: (p.fn(), p.sync()))
    time.sleep(TimingConfig().settle_s)  # let the previous pair's OpenMP workers stop spinning
    benchmark(timed)
    if benchmark.stats is not None:  # None when benchmarks are disabled (the closure ran once)
        benchmark.extra_info.update(roofline.derive(_ceilings(device), flops, nbytes, benchmark.stats.stats.median,
                                                    DTYPE_NAMES[DTYPE]))
