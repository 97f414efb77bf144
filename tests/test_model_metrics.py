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


def _bench_to(out):
    return ModelBench(ModelBenchConfig(device="cpu", timing=QUICK, decode_timing=QUICK, prefill=False, gate_T=8), out=out)


def _bench():
    return _bench_to(None)


def test_registered_metrics_fill_the_record_and_pass_the_schema():
    rec, = _bench().run("stackformer", "tiny", TINY, 1, 6, ["torch"], peers=(), role="grid")
    assert rec["status"] == "ok" and rec["peak_mem_bytes"] > 0 and rec["op_breakdown"]
    think = rec["thinking"]
    assert think["tokens"] == 6 and 1 <= think["steps_mean"] <= TINY["max_steps"]
    assert sum(think["steps_hist"]) == 6 and len(think["steps_hist"]) == TINY["max_steps"] + 1
    _, problems = results.validate(rec)
    assert not problems, problems


def test_thinking_reaches_the_training_records_and_the_report(tmp_path):
    """The stackformer's thinking in arsenal models records and in the trainer's
    evaluations, and the report's thinking section draws both."""
    import pathlib

    import reports
    from bench.train import TrainConfig, train

    out = tmp_path / "r.jsonl"
    _bench_to(out).run("stackformer", "tiny", TINY, 1, 6, ["torch"], peers=(), role="grid")
    train(TrainConfig(family="stackformer", model=TINY, task="selective_copy", steps=2, batch_size=4, eval_every=1,
                      task_args={"length": 16, "n_tokens": 4, "vocab": 8, "n_train": 16, "n_valid": 8, "n_test": 8},
                      out=str(out), progress=False, device="cpu"))
    recs = results.read(out)
    evals = [r for r in recs if r.get("kind") == "train" and r["split"] in ("val", "test")]
    assert evals and all(sum(r["thinking"]["steps_hist"]) == r["thinking"]["tokens"] > 0 for r in evals)
    html = pathlib.Path(reports.write_report([str(out)], str(tmp_path / "r.html"))).read_text()
    assert all(f"fig-thinking-{name}" in html for name in ("steps", "mass", "training"))


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


def test_cpu_peak_memory_counts_live_storages_and_frees():
    """The eager CPU peak: bytes of the storages alive at once (a view or an in-place
    result is not counted again; a freed tensor leaves the count)."""
    import torch

    from bench.modelbench.profile import peak_memory

    def fn():
        a = torch.ones(1 << 20)  # 4 MiB
        a.add_(1)
        b = a.view(2, -1)  # a view: the same storage
        del a, b
        c = torch.zeros(1 << 19)  # 2 MiB, after the 4 MiB were freed
        return c

    assert peak_memory(fn, "cpu") == 4 << 20
    # compiled code's probe (the allocator's events, op events off) sees the same peak,
    # give or take the allocator's few bytes of bookkeeping
    assert 4 << 20 <= peak_memory(fn, "cpu", compiled=True) < (4 << 20) + 4096
    with torch.profiler.profile() as prof:  # and op events are on again after it
        torch.ones(2) + 1
    assert any(e.name == "aten::add" for e in prof.events())
