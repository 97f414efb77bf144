"""The model benchmark pipeline (bench/modelbench/bench.py) at tiny sizes: records of every
mix, a failing gate never timed, unavailable mixes kept with their reason, the per-op
breakdown, the derived figures (slopes, break-even, best mix) and training equivalence.
Nothing here asserts a speed."""

from __future__ import annotations

import pathlib

import math

import pytest
import torch

from bench import load, results

from bench.modelbench import bench as model_bench, equivalence as model_equivalence, gate as model_gate, profile as model_profile
from bench.modelbench.bench import ModelBench, ModelBenchConfig
from bench.modelbench.fits import best_mix, break_even, fit_slope
from backends.mix import mix_id, parse_mix
from bench.timing import TimingConfig

FAST = ModelBenchConfig(timing=TimingConfig(budget_s=0.05, block_s=0.0, max_reps=3, min_reps=1, min_rounds=1,
                                            warmup_s=0.0, settle_s=0.0),
                        decode_timing=TimingConfig(budget_s=0.02, max_reps=3, min_reps=1, min_rounds=1,
                                                   warmup_s=0.0, settle_s=0.0),
                        load=load.LoadConfig(pause_s=0.0))
TINY = dict(d_model=16, n_heads=2, n_layers=1)


def test_mix_ids_round_trip():
    mix = {"default": "torch", "parallel_scan": "numba_cpu", "micro_mlp": "triton"}
    assert mix_id(mix) == "torch+micro_mlp=triton+parallel_scan=numba_cpu"
    assert parse_mix(mix_id(mix)) == mix
    assert parse_mix("numba_cpu") == {"default": "numba_cpu"}
    with pytest.raises(ValueError, match="expected DEFAULT\\+op=backend"):
        parse_mix("torch+parallel_scan")


def test_records_of_a_group(tmp_path):
    out = tmp_path / "r.jsonl"
    recs = ModelBench(FAST, out=out).run("transformer", "tiny", TINY, 2, 8, ["torch", "numba_cpu", "triton"],
                                         peers=())
    by = {r["mix_id"]: r for r in recs}
    assert by["torch"]["status"] == "ok" and by["numba_cpu"]["status"] == "ok"
    assert by["numba_cpu"]["gate"]["ok"] and by["torch"]["gate"] is None
    for r in (by["torch"], by["numba_cpu"]):
        assert r["kind"] == "model" and r["median_ns"] > 0 and len(r["samples_ns"]) >= 1
        assert r["tokens_per_s"] > 0 and r["prefill_tokens_per_s"] > 0 and r["decode_ns_per_token"] > 0
        assert r["peak_mem_bytes"] > 0 and r["params"] > 0
        assert r["load"]["verdict"] in ("quiet", "disturbed")
        assert set(r["op_breakdown"]) == {"rest"}  # the transformer calls no registry op
    assert by["torch"]["speedup_vs_torch"] == 1.0
    if by["triton"]["status"] == "unavailable":  # CPU without the interpreter in this process
        assert "triton" in by["triton"]["error"]
    stored = results.read(out)
    assert [r["mix_id"] for r in stored] == ["torch", "numba_cpu", "triton"]


def test_an_isolated_group_runs_in_its_own_process(tmp_path):
    """``isolate``: the group runs in a spawned process, which appends the records and
    sends its progress to the caller's log; the records come back, numbered as in one
    process; a failure in the child is raised here."""
    import dataclasses

    out, logged = tmp_path / "r.jsonl", []
    bench = ModelBench(dataclasses.replace(FAST, isolate=True, prefill=False, breakdown=False), out=out,
                       log=logged.append)
    recs = bench.run("transformer", "tiny", TINY, 2, 8, ["torch"], peers=())
    again = bench.run("transformer", "tiny", TINY, 2, 8, ["torch"], peers=())
    assert recs[0]["status"] == "ok" and recs[0]["median_ns"] > 0 and bench.group == 2
    stored = results.read(out)
    assert [(r["run_id"], r["group"]) for r in stored] == [(bench.run_id, 0), (bench.run_id, 1)]
    assert stored[0]["median_ns"] == recs[0]["median_ns"] and again[0]["group"] == 1
    assert "transformer-tiny B2-T8: timing torch" in logged
    with pytest.raises(RuntimeError, match="failed in its process"):
        bench.run("no_such_family", "tiny", TINY, 2, 8, ["torch"], peers=())


def test_failing_gate_is_recorded_and_never_timed(monkeypatch):
    def failing(cfg, mix, device="cpu", **kw):
        return {"ok": False, "problems": ["hidden: error 1 > 1e-4"], "against": "torch"}

    monkeypatch.setattr(model_gate, "gate", failing)
    recs = ModelBench(FAST).run("transformer", "tiny", TINY, 2, 8, ["torch", "numba_cpu"], peers=())
    bad = next(r for r in recs if r["mix_id"] == "numba_cpu")
    assert bad["status"] == "incorrect" and "hidden: error" in bad["error"] and "median_ns" not in bad


def test_breakdown_names_the_ops_and_adds_up():
    import backends
    import models

    cfg = models.config("transformer", **TINY)
    model = models.build(cfg, backends.resolve("torch", "cpu"))
    tokens, targets = model_bench.lm_batch(cfg.vocab_size, 2, 8, "cpu")
    scan_in = torch.rand(2, 8, 4, requires_grad=True)

    def step():
        model_bench.lm_loss(model, tokens, targets).backward()
        model.ops.parallel_scan(scan_in, scan_in).sum().backward()

    shares, wall, method = model_profile.op_breakdown(step, "cpu", steps=2)
    assert method == "op_clock" and shares["parallel_scan"] > 0 and shares["rest"] > 0
    assert math.isclose(sum(shares.values()), wall, rel_tol=1e-6)


def test_slope_break_even_and_best_mix():
    lengths = [256, 512, 1024, 2048]
    fit = fit_slope(lengths, [3.0 * t ** 2 * (1.1 if i % 2 else 0.9) for i, t in enumerate(lengths)])
    assert abs(fit["slope"] - 2.0) < 0.1 and fit["ci95"][0] < fit["slope"] < fit["ci95"][1]
    assert break_even(lengths, [10.0 * t for t in lengths], [0.01 * t * t for t in lengths]) == pytest.approx(1000.0)
    assert break_even(lengths, [1e9] * 4, [1.0] * 4) is None
    swaps = [
        {"mix_id": "torch", "status": "ok", "speedup_vs_torch": 1.0, "speedup_vs_torch_ci95": None},
        {"mix_id": "torch+parallel_scan=numba_cpu", "status": "ok", "speedup_vs_torch": 3.0,
         "speedup_vs_torch_ci95": [2.5, 3.5]},
        {"mix_id": "torch+parallel_scan=triton", "status": "ok", "speedup_vs_torch": 4.0,
         "speedup_vs_torch_ci95": [3.0, 5.0]},
        {"mix_id": "torch+micro_mlp=numba_cpu", "status": "ok", "speedup_vs_torch": 1.05,
         "speedup_vs_torch_ci95": [0.9, 1.2]},  # not surely faster: stays on torch
        {"mix_id": "torch+gated_update=numba_cpu", "status": "incorrect", "speedup_vs_torch": None},
    ]
    assert best_mix(swaps) == {"default": "torch", "parallel_scan": "triton"}


def test_scaling_fits_carry_the_break_even_into_records_and_the_report(tmp_path):
    """Scaling records -> one kind="scaling_fit" record per model and mix with its slopes
    and its break-even length against the transformer; the report's models section shows it."""
    import reports
    from bench import results
    from bench.modelbench.fits import scaling_fits

    lengths = [256, 512, 1024, 2048]

    def rec(family, mix, T, ns):
        return results.new_record("model", run_id="r", env=None, family=family, config_id="d64", mix_id=mix,
                                  mix={"default": mix}, backend=mix, task="lm", case={"B": 4, "T": T},
                                  case_id=f"B4-T{T}", role="scaling", device="cpu", dtype="float32", status="ok",
                                  samples_ns=[ns] * 5, median_ns=ns, q1_ns=ns, q3_ns=ns, peak_mem_bytes=1e6 * T)

    recs = [rec("transformer", "torch", T, 0.01 * T * T * 1e3) for T in lengths]
    recs += [rec("nsm", "torch", T, 10.0 * T * 1e3) for T in lengths]  # cheaper from T = 1000
    fits = scaling_fits(recs)
    nsm = next(f for f in fits if f["family"] == "nsm")
    assert nsm["break_even_T"] == pytest.approx(1000.0) and nsm["reference_mix"] == "torch"
    assert abs(nsm["slope"] - 1.0) < 1e-9 and nsm["memory_slope"] == pytest.approx(1.0)
    out = tmp_path / "r.jsonl"
    for r in recs:
        results.append(out, r)
    for f in fits:
        results.append(out, results.new_record("scaling_fit", run_id="r", env=None, status="ok", **f))
    assert all(not results.validate(r)[1] for r in results.read(out))
    html = reports.write_report([str(out)], str(tmp_path / "r.html"))
    assert "1,000 tokens" in pathlib.Path(html).read_text()


def test_training_equivalence_record():
    rec = model_equivalence.equivalence("transformer", "tiny", TINY, "numba_cpu", steps=5, B=2, T=8)
    assert rec["kind"] == "equivalence" and len(rec["losses_mix"]) == len(rec["losses_torch"]) == 5
    assert rec["ok"] and rec["max_abs_diff"] <= rec["tolerance"]
    assert rec["agreement"] == "tolerance" and rec["losses_floor"] is None  # no floor needed
    assert rec["losses_torch"][-1] < rec["losses_torch"][0]


@pytest.mark.parametrize("floor_gap, agreement", [(8e-3, "noise"), (1e-3, "differs")])
def test_equivalence_beyond_tolerance_is_judged_against_the_noise_floor(monkeypatch, floor_gap, agreement):
    """A curve that leaves the tolerance agrees only if all-torch from weights moved by
    one ulp strays as far (at least half as far); the floor is trained only then."""
    calls = []

    def curve(config, mix, batches, device, lr=3e-3, perturb_seed=None):
        calls.append(perturb_seed)
        gap = floor_gap if perturb_seed is not None else (1e-2 if mix != "torch" else 0.0)
        return [2.0 - 0.01 * i + (gap if i > 2 else 0.0) for i in range(len(batches))]

    monkeypatch.setattr(model_equivalence, "train_curve", curve)
    rec = model_equivalence.equivalence("transformer", "tiny", TINY, "numba_cpu", steps=6, B=2, T=8)
    assert rec["agreement"] == agreement and rec["ok"] == (agreement == "noise")
    assert rec["noise_floor"] == pytest.approx(floor_gap) and len(rec["losses_floor"]) == 6
    assert calls == [None, None, 1]  # torch, the mix, then the floor (seed + 1)


def test_front_end_path(monkeypatch):
    """pytest-benchmark and asv get their closures from gate_then_prepare."""
    ready = model_bench.gate_then_prepare("transformer", TINY, "numba_cpu", 2, 8)
    assert ready.status == "ready" and ready.prepared.step() is None
    gone = model_bench.gate_then_prepare("transformer", TINY, "no_such_backend", 2, 8)
    assert gone.status == "unavailable" and "no_such_backend" in gone.error
    monkeypatch.setattr(model_gate, "gate", lambda *a, **k: {"ok": False, "problems": ["grad w: error 2 > 1"]})
    bad = model_bench.gate_then_prepare("transformer", TINY, "numba_cpu", 2, 8)
    assert bad.status == "incorrect" and bad.prepared is None


def test_nsm_runs_write_routing_records(tmp_path):
    out = tmp_path / "r.jsonl"
    ModelBench(FAST, out=out).run("nsm", "tiny", dict(d_model=16, n_layers=1, variant="simple"), 2, 8, ["torch"],
                                  peers=())
    routing = [r for r in results.read(out) if r.get("kind") == "routing"]
    assert routing and routing[0]["family"] == "nsm" and len(routing[0]["weights"]) == 8
    assert all(abs(sum(row) - 1) < 1e-5 for row in routing[0]["weights"])
    assert "communication" not in routing[0]  # simple: no communication among the states


def test_nsm_communication_weights_are_recorded_beside_routing_and_drawn(tmp_path):
    import reports

    out = tmp_path / "r.jsonl"
    over = dict(variant="hybrid", d_model=16, n_layers=2, layer_pattern="NT", n_heads=2, n_states=4, chunk=4,
                communication=True)
    ModelBench(FAST, out=out).run("nsm", "hybrid", over, 2, 8, ["torch"], peers=())
    routing = [r for r in results.read(out) if r.get("kind") == "routing"]
    comm = [r["communication"] for r in routing if "communication" in r]
    assert comm and len(comm[0]) == 2 and len(comm[0][0]) == 4  # [H][S][S]
    assert all(abs(sum(row) - 1) < 1e-5 for head in comm[0] for row in head)  # attention rows sum to 1
    html = pathlib.Path(reports.write_report([str(out)], str(tmp_path / "r.html"))).read_text()
    assert "fig-routing-communication" in html


def test_equivalence_with_a_diverged_run_is_not_ok(monkeypatch):
    curves = iter([[3.0, 2.0, float("nan")], [3.0, 2.0, float("nan")]])
    monkeypatch.setattr(model_equivalence, "train_curve", lambda *a, **k: next(curves))
    rec = model_equivalence.equivalence("transformer", "tiny", TINY, "numba_cpu", steps=3, B=2, T=8)
    assert not rec["ok"] and rec["status"] == "error" and "from step 2" in rec["error"]
