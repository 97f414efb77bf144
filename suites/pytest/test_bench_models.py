"""pytest-benchmark of model training steps: ``pytest suites/pytest -k models --benchmark-only``.

One benchmark per (family config, mix) of suites/model_runs.py at one length, in one
group per model so the mixes sit side by side. Each is made ready by the path
`arsenal models` uses (``bench.modelbench.bench.gate_then_prepare``): an unavailable mix is
skipped with the reason, a mix failing the gate against all-torch fails and is never
timed, and the timed callable is the prepared training-step closure.
"""

import pytest

import models
from bench import load
from bench.modelbench.bench import gate_then_prepare
from suites.model_runs import front_end_params


def pytest_generate_tests(metafunc):
    if "model_run" not in metafunc.fixturenames:
        return
    chosen = metafunc.config.getoption("arsenal_names")
    runs = front_end_params(None if chosen is None else tuple(chosen.split(",")))
    metafunc.parametrize("model_run", runs, ids=[f"models-{f}-{c}-B{b}-T{t}-{m}" for f, c, _, m, b, t in runs])


def test_model_step(benchmark, model_run, request):
    family, cid, over, mix, B, T = model_run
    if family not in models.FAMILIES:
        pytest.skip(f"family {family} is not built")
    ready = gate_then_prepare(family, over, mix, B, T, request.config.getoption("arsenal_device"))
    if ready.status == "unavailable":
        pytest.skip(ready.error)
    assert ready.status == "ready", f"{family}-{cid} [{mix}] is {ready.status}, not timed: {ready.error}"
    benchmark.group = f"models-{family}-{cid}-B{B}-T{T}"
    benchmark.extra_info.update(family=family, config_id=cid, mix_id=mix, case={"B": B, "T": T},
                                compile_seconds=ready.prepared.compile_seconds)
    with load.watched(request.config.getoption("arsenal_device")) as seen:
        benchmark.pedantic(ready.prepared.step, rounds=5, iterations=1, warmup_rounds=1)
    benchmark.extra_info["load"] = seen  # bench/load.py: "disturbed" when other work took the cores
