"""asv benchmarks of model training steps, parametrised by model and mix.

Each (family config, mix) of suites/model_runs.py at one length is made ready by the
path `arsenal models` uses (``bench.modelbench.bench.gate_then_prepare``): an unavailable
mix raises SkipNotImplemented with the reason, a mix failing the gate against
all-torch fails in setup and is never timed. ``ARSENAL_NAMES`` (comma list) picks the
mixes, ``ARSENAL_DEVICE`` the device; ``track_compile_seconds`` records the first
step's JIT / compile cost.
"""

import os

import torch
from asv_runner.benchmarks.mark import SkipNotImplemented

import models
from bench import env
from bench.modelbench.bench import gate_then_prepare
from suites.model_runs import front_end_params

DEVICE = os.environ.get("ARSENAL_DEVICE", "cuda" if torch.cuda.is_available() else "cpu")
NAMES = os.environ.get("ARSENAL_NAMES")
env.pin_process(int(os.environ.get("ARSENAL_THREADS", "0")) or None)
RUNS = {f"{f}-{c}-B{b}-T{t}": (f, over, b, t) for f, c, over, _, b, t in front_end_params()}
MIXES = sorted({m for *_, m, _, _ in front_end_params(tuple(NAMES.split(",")) if NAMES else None)})
_CURRENT: dict = {}


def _prepared(run: str, mix: str):
    key = (run, mix)
    if key not in _CURRENT:
        _CURRENT.clear()
        family, over, B, T = RUNS[run]
        if family not in models.FAMILIES:
            raise SkipNotImplemented(f"family {family} is not built")
        ready = gate_then_prepare(family, over, mix, B, T, DEVICE)
        if ready.status == "unavailable":
            raise SkipNotImplemented(ready.error)
        if ready.status != "ready":
            raise AssertionError(f"{run} [{mix}] is {ready.status}, not timed: {ready.error}")
        _CURRENT[key] = ready.prepared
    return _CURRENT[key]


class ModelStep:
    params = (sorted(RUNS), MIXES)
    param_names = ("model", "mix")
    timeout = 600

    def setup(self, run, mix):
        self.prepared = _prepared(run, mix)

    def time_training_step(self, run, mix):
        self.prepared.step()

    def track_compile_seconds(self, run, mix):
        return _prepared(run, mix).compile_seconds

    track_compile_seconds.unit = "seconds"
