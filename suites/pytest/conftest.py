"""pytest-benchmark over the op suites: ``pytest suites/pytest --benchmark-only``.

Options: ``--arsenal-suite`` (quick, full or stable), ``--arsenal-modes`` (comma list of
forward, backward, forward_backward), ``--arsenal-names`` (backends and peers; default
every candidate of each op); $ARSENAL_THREADS sets the thread count (default: every
core). The pairs come from the harness's planner (``bench.ops.plan``: the candidate table
x the suite's cases); one benchmark group per (op, case, mode), so pytest-benchmark's
table sets the implementations side by side.
"""

import os

import pytest
import torch

from bench import env
from suites.op_shapes import DEFAULT_MODES

# torch's and Numba's thread counts pinned (every core, or $ARSENAL_THREADS) and recorded,
# with each benchmark (extra_info["threads"]); malloc thresholds fixed (bench/env.py)
env.pin_process(int(os.environ.get("ARSENAL_THREADS", "0")) or None)


def pytest_addoption(parser):
    group = parser.getgroup("arsenal", "Arsenal op benchmarks")
    group.addoption("--arsenal-suite", default="quick", help="op suite: quick, full or stable (default quick)")
    group.addoption("--arsenal-modes", default=",".join(DEFAULT_MODES),
                    help=f"comma list of forward, backward, forward_backward (default {','.join(DEFAULT_MODES)})")
    group.addoption("--arsenal-names", default=None,
                    help="comma list of backends and peers (default: every candidate of each op)")
    group.addoption("--arsenal-device", default="cuda" if torch.cuda.is_available() else "cpu",
                    help="device to run on (default cuda when present, else cpu)")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    """The project's pytest defaults disable benchmarks (tests/ never times anything);
    asking for --benchmark-only here means timing is wanted, so enable them."""
    if config.getoption("benchmark_only", default=False):
        config.option.benchmark_enable = True
