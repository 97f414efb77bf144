"""One benchmark per (op, case, mode, implementation) of the chosen suite; see conftest.py.

The pairs come from the harness's planner (``bench.ops.plan``), and each is made ready by
the same path as ``arsenal ops`` (``bench.ops.pipeline.gate_then_prepare``: the correctness
gate, then ``bench.ops.prepare``): a pair failing the gate fails its test and is never
timed, an unavailable one is skipped with the reason. The timed callable is the
prepared closure that ``arsenal ops`` and asv time too.
"""

import functools
import time

import pytest
import torch

import backends
from backends.registry import MODES
from bench import env, load, roofline
from bench.ops import pipeline, plan
from bench.ops.dtypes import name as dtype_name
from bench.ops.gate import Gate
from bench.timing import TimingConfig

DTYPE = torch.float32


def pytest_generate_tests(metafunc):
    if "item" not in metafunc.fixturenames:
        return
    config = metafunc.config
    modes = [m for m in config.getoption("arsenal_modes").split(",") if m]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise pytest.UsageError(f"--arsenal-modes: unknown {unknown}; modes are {', '.join(MODES)}")
    chosen = config.getoption("arsenal_names")
    sel = plan.Selection(names=None if chosen is None else tuple(chosen.split(",")), peers=True, dtypes=(DTYPE,),
                         modes=tuple(modes), suite=config.getoption("arsenal_suite"),
                         device=config.getoption("arsenal_device"))
    items = plan.items(sel)  # blocked order: a group's implementations run one after another
    metafunc.parametrize("item", items, ids=[f"{i.op}-{i.case_id}-{i.mode}-{i.name}" for i in items])


@pytest.fixture(scope="session")
def gate(request):
    return Gate(request.config.getoption("arsenal_device"))


@functools.cache
def _ceilings(device):
    return roofline.ceilings(device)


def test_op(benchmark, gate, item):
    got = pipeline.gate_then_prepare(gate, item)
    if got.status == pipeline.UNAVAILABLE:
        pytest.skip(got.error)
    if got.status != pipeline.READY:
        pytest.fail(f"{got.status}, not timed: {got.error}")
    p, checked = got.prepared, got.gate
    spec = backends.OPS[item.op]
    flops, nbytes = float(spec.flops(item.case, item.mode)), float(spec.bytes(item.case, item.dtype, item.mode))
    benchmark.group = f"{item.op} {item.case_id} {item.mode}"
    benchmark.extra_info.update(op=item.op, backend=item.name, mix={item.op: item.name}, case=item.case,
                                dtype=dtype_name(item.dtype), mode=item.mode, device=item.device,
                                compile_seconds=p.compile_seconds, flops=flops, bytes=nbytes,
                                threads=env.thread_counts(), gate_forward_error=checked.forward_error,
                                gate_grad_error=checked.grad_error)
    timed = p.fn if torch.device(item.device).type == "cpu" else (lambda: (p.fn(), p.sync()))
    time.sleep(TimingConfig().settle_s)  # let the previous pair's OpenMP workers stop spinning
    with load.watched(item.device) as seen:
        benchmark(timed)
    benchmark.extra_info["load"] = seen
    if benchmark.stats is not None:  # None when benchmarks are disabled (the closure ran once)
        benchmark.extra_info.update(roofline.derive(_ceilings(item.device), flops, nbytes,
                                                    benchmark.stats.stats.median, dtype_name(item.dtype)))
