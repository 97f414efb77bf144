"""Model metrics are registered functions (bench/modelbench/metrics.py): each runs once per
prepared mix, its fields land in the record, a failing one is named and costs nothing else."""

from __future__ import annotations

import pytest

from bench import results
from bench.modelbench import metrics
from bench.modelbench.bench import ModelBench, ModelBenchConfig
from bench.timing import TimingConfig

QUICK = TimingConfig(budget_s=0.05, min_reps=2, min_rounds=1, max_reps=2, warmup_s=0.0, block_s=0.0)
TINY = dict(d_model=16, d_core=8, n_heads=2, n_banks=2, n_layers=1, stack_depth=3, max_steps=3)


def _bench():
    return ModelBench(ModelBenchConfig(device="cpu", timing=QUICK, decode_timing=QUICK, prefill=False, gate_T=8), out=None)


def test_registered_metrics_fill_the_record_and_pass_the_schema():
    rec, = _bench().run("stackformer", "tiny", TINY, 1, 6, ["torch"], peers=(), role="grid")
    assert rec["status"] == "ok" and rec["peak_mem_bytes"] > 0 and rec["op_breakdown"]
    think = rec["thinking"]
    assert think["tokens"] == 6 and 1 <= think["steps_mean"] <= TINY["max_steps"]
    assert sum(think["steps_hist"]) == 6 and len(think["steps_hist"]) == TINY["max_steps"] + 1
    _, problems = results.validate(rec)
    assert not problems, problems


def test_a_new_metric_is_one_function_and_a_failing_one_is_named(monkeypatch):
    monkeypatch.setattr(metrics, "METRICS", dict(metrics.METRICS))

    @metrics.metric("params_twice", fields=("params_twice",))
    def params_twice(ctx):
        return {"params_twice": 2 * sum(p.numel() for p in ctx.model.parameters())}

    @metrics.metric("broken", fields=("never",))
    def broken(ctx):
        raise RuntimeError("planted")

    with pytest.raises(ValueError, match="registered twice"):
        metrics.metric("broken", fields=())(broken)
    rec, = _bench().run("elman", "rung4", dict(d_model=8, n_layers=1, rung=4), 1, 6, ["torch"], peers=(), role="grid")
    assert rec["params_twice"] == 2 * rec["params"] and rec["peak_mem_bytes"] > 0
    assert rec["metric_errors"] == {"broken": "RuntimeError: planted"} and "never" not in rec
    assert "thinking" not in rec  # applies to the stackformer only
