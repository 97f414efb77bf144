"""The bake-off (bench/bakeoff, suites/bakeoff.py, arsenal bakeoff) and the trainer defaults
of issue 21: the minutes budget, the weight decay groups, --eos. The smoke grid runs with
one step per cell (four cells of d_model 16, about 10 s); under Ray once more."""

from __future__ import annotations

import importlib.util
import math

import pytest

import backends
import models
from bench import results
from bench.bakeoff import mixes, plan, run
from bench.train import TrainConfig, train
from bench.train.options import eos_id
from bench.train.run import decay_groups
from suites import bakeoff, tasks
from suites.model_runs import MODELS


@pytest.fixture(scope="module")
def smoke_inline():
    return run(plan("smoke", steps=1))


def _finals(records):
    return {r["cell"]: r for r in records if r.get("final")}


def test_smoke_grid_records(smoke_inline, tmp_path):
    finals = _finals(smoke_inline)
    assert set(finals) == {c.cell_id for c in bakeoff.get("smoke").cells}
    for rec in smoke_inline:
        checked, problems = results.validate(rec)
        assert not problems, problems
    for rec in finals.values():
        assert rec["status"] == "ok" and rec["grid"] == "smoke" and rec["step"] == 1
        assert rec["budget_steps"] == 1 and rec["budget_minutes"] is None and rec["stopped_by"] == "steps"
        assert rec["tokens_per_s"] > 0 and rec["peak_mem_bytes"] > 0 and 0 <= rec["value"] <= 1
        assert rec["baseline"] is not None
        # the transformer calls no registry op: its mix is named torch, not a backend it never runs
        assert rec["mix_source"].startswith("torch: " if rec["family"] == "transformer" else "default")
        assert rec["mix_id"] == "torch" or rec["family"] != "transformer"


def test_results_appended_as_cells_finish(tmp_path):
    spec = plan("smoke", steps=1)[:1]
    seen = []
    out = tmp_path / "r.jsonl"
    run(spec, out=str(out), on_cell=lambda s, recs: seen.append(len(results.read(out))))
    assert seen == [len(results.read(out))] and seen[0] >= 2  # train, val, test of the one step


def test_failed_cell_is_a_record():
    spec = plan("smoke", steps=1)[0]
    spec["train"]["task_args"] = {"no_such_field": 1}
    (rec,) = run([spec])
    assert rec["status"] == "error" and "no_such_field" in rec["error"] and rec["cell"] == spec["cell"]
    assert not results.validate(rec)[1]


def test_grids_cover_the_issue():
    lra = bakeoff.get("lra").cells
    assert {c.task for c in lra} == {"listops", "text", "retrieval", "image", "pathfinder"}
    assert {(c.family, c.config_id) for c in lra} == {(f, cid) for f, cid, _ in MODELS}
    assert {c.task for c in bakeoff.get("lm").cells} == {"ptb_char", "ptb_word", "shakespeare_char"}
    ladder = bakeoff.get("ladder").cells
    rows = {(c.model["rung"], c.model["r_h"]) for c in ladder}
    assert rows == {(r, m) for r in range(4) for m in bakeoff.R_H_MODES} | {(4, "free")}
    assert {c.task for c in ladder} == {"selective_copy", "mqar", "ptb_char"}
    assert len({c.model["d_model"] for c in ladder}) == 1
    for cell in ladder + lra:  # every cell's config is one the family accepts
        models.config(cell.family, **cell.model)
    for grid in bakeoff.GRIDS.values():
        for cell in grid.cells:
            TrainConfig(family=cell.family, task=cell.task, **cell.train)


def test_plan_refuses_bad_arguments():
    for kwargs, word in ((dict(grid="nope"), "grid"), (dict(grid="smoke", minutes=0), "minutes"),
                         (dict(grid="smoke", steps=0), "steps"), (dict(grid="smoke", seeds=0), "seeds"),
                         (dict(grid="smoke", tasks=("listops", "pathx")), "tasks.*pathx"),
                         (dict(grid="smoke", families=("nsm",)), "families.*nsm"),
                         (dict(grid="smoke", models=("elman-rung9",)), "models.*elman-rung9")):
        with pytest.raises(ValueError, match=f"bakeoff.*{word}"):
            plan(**kwargs)


def test_plan_keeps_the_named_tasks_and_families():
    specs = plan("smoke", steps=1, tasks=("listops",), families=("elman",))
    assert [s["cell"] for s in specs] == ["elman-rung4/listops"]


def test_plan_keeps_the_named_models():
    ladder = bakeoff.get("ladder")
    specs = plan("ladder", steps=1, tasks=("selective_copy",), models=("elman-rung0-free", "elman-rung0-spectral_norm"))
    assert [s["cell"] for s in specs] == ["elman-rung0-free/selective_copy", "elman-rung0-spectral_norm/selective_copy"]
    assert {c.model_id for c in ladder.cells} >= {"elman-rung0-free", "elman-rung4-free"}


def test_plan_seeds_and_mix():
    specs = plan("smoke", steps=3, seeds=2, mix="torch")
    assert len(specs) == 2 * len(bakeoff.get("smoke").cells)
    assert sorted({s["train"]["seed"] for s in specs}) == [0, 1]
    assert all(s["train"]["mix"] == {"default": "torch"} and s["mix_source"] == "--mix" for s in specs)


def _model_record(mix, speed, gate_ok=True, status="ok", rung=4):
    return {"kind": "model", "family": "elman", "config": {"rung": rung, "d_model": 64}, "mix_id": mix,
            "status": status, "gate": None if mix == "torch" else {"ok": gate_ok}, "tokens_per_s": speed}


def test_mix_from_profile_records():
    recs = [_model_record("torch", 100.0), _model_record("numba_cpu", 300.0),
            _model_record("torch+parallel_scan=numba_cpu", 900.0, gate_ok=False),  # incorrect: never chosen
            _model_record("torch_compile", 5000.0),  # a whole-model peer, not a mix
            _model_record("numba_cuda", 9000.0, status="unavailable"), _model_record("torch", 10_000.0, rung=3)]
    assert mixes.fastest_profiled(recs, "elman", {"rung": 4, "d_model": 16})[0] == "numba_cpu"
    mix, source = mixes.choose("elman", {"rung": 4}, recs)
    assert mix == {"default": "numba_cpu"} and source.startswith("profile")
    mix, source = mixes.choose("elman", {"rung": 4}, [])
    assert mix["parallel_scan"] == "numba_cpu" and source.startswith("default")
    assert mixes.default_mix("transformer", {}) == {"default": "torch"}


def test_plan_ranks_mixes_by_records_already_read():
    """The command reads --out once and hands its records to plan (no second read)."""
    fast_torch = [_model_record("torch", 9000.0), _model_record("numba_cpu", 10.0)]
    specs = plan("smoke", steps=1, families=("elman",), records=fast_torch)
    assert specs and all(s["train"]["mix"] == {"default": "torch"} and s["mix_source"].startswith("profile")
                         for s in specs)


def test_command_keeps_the_cells_its_out_file_has_finished(smoke_inline, tmp_path, capsys):
    from bench import cli

    out = tmp_path / "grid.jsonl"
    for rec in smoke_inline:
        results.append(str(out), rec)
    before = out.read_text()
    assert cli.main(["bakeoff", "--grid", "smoke", "--steps", "1", "--out", str(out)]) == 0
    assert f"{len(bakeoff.get('smoke').cells)} cells already finished" in capsys.readouterr().out
    assert out.read_text() == before  # nothing trained again


def test_minutes_budget_stops_the_run():
    task = tasks.get("selective_copy", **dict(bakeoff.SMOKE_TASKS)["selective_copy"])
    cfg = TrainConfig(family="transformer", model=dict(d_model=16, n_layers=1), task="selective_copy", steps=10**6,
                      minutes=0.002, batch_size=8, eval_every=10**6, eval_batches=1, test_batches=1, out=None,
                      progress=False, threads=1)
    result = train(cfg, task=task)
    final = result.final
    assert final["stopped_by"] == "minutes" and 1 <= final["step"] < 10**6
    assert final["wall_s"] >= 0.12 and final["budget_minutes"] == 0.002


@pytest.mark.parametrize("family,over,kept,decayed", [
    ("stackformer", {}, "decay_logits", "qkv.weight"),
    ("nsm", dict(variant="simple"), "h0", "w_route"),
    ("fastlane", {}, "units_ab", "w_up.weight"),
])
def test_weight_decay_groups(family, over, kept, decayed):
    model = models.build(models.config(family, vocab_size=8, d_model=16, n_layers=1, **over),
                         backends.resolve("torch", "cpu"))
    on, off = decay_groups(model)
    assert any(n.endswith(kept) for n in off) and not any(n.endswith(kept) for n in on)
    assert any(n.endswith(decayed) for n in on) and "embed.weight" in on
    assert not any("norm" in n or n.endswith("bias") for n in on)
    assert set(on) | set(off) == {n for n, _ in model.named_parameters()}


def test_eos_option():
    assert eos_id("10") == 10 and eos_id("\\n") == 10 and eos_id(".") == 46
    with pytest.raises(ValueError, match="--eos"):
        eos_id("ab")


@pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                    reason="ray is not installed (pip install -e '.[ray]'): the Ray executor is not tested")
def test_smoke_grid_under_ray_equals_inline(smoke_inline):
    pytest.importorskip("ray")
    under_ray = _finals(run(plan("smoke", steps=1), executor="ray", workers=2))
    inline = _finals(smoke_inline)
    assert set(under_ray) == set(inline)
    for cell, rec in inline.items():
        other = under_ray[cell]
        assert other["status"] == "ok", other.get("error")
        assert other["step"] == rec["step"] and other["mix_id"] == rec["mix_id"]
        assert math.isclose(other["loss"], rec["loss"], rel_tol=1e-6) and other["value"] == rec["value"]


def test_report_tables(smoke_inline):
    import pandas as pd

    from reports.sections.bakeoff import accuracy_table, speed_table
    from reports.sections.ladder import ladder_rows

    final = pd.DataFrame([r for r in smoke_inline if r.get("final")])
    final = final.assign(model=[c.split("/")[0] for c in final["cell"]])
    acc = accuracy_table(final)
    assert list(acc["model"][:3]) == ["transformer-d16", "elman-rung4", "trivial baseline"]
    assert any("context" in str(v) for v in acc["listops"])  # the published anchors beside a cut task
    speed = speed_table(final)
    assert set(speed[speed["model"] == "transformer-d16"]["tokens/s vs transformer"]) == {1.0}
    rows = [dict(model=f"rung{r}-free", task="ptb_char", status="ok", value=v, step=10, wall_s=1.0, tokens_per_s=100.0 * (r + 1),
                 peak_mem_bytes=2**20) for r, v in ((0, 2.0), (1, 1.5))]
    ladder = ladder_rows(pd.DataFrame(rows))
    assert list(ladder["row"]) == ["figures", "figures", "minus the row below"]
    assert ladder.iloc[2]["ptb_char"] == "-0.5" and ladder.iloc[2]["tokens/s"] == "100"


def test_ladder_difference_pairs_seeds_and_report_names_unlearned_cells():
    import pandas as pd

    from reports.sections.bakeoff import unlearned
    from reports.sections.ladder import ladder_rows

    rows = [dict(model=f"rung{r}-free", task="mqar", status="ok", value=v, seed=seed, step=10, wall_s=1.0,
                 tokens_per_s=100.0, peak_mem_bytes=2**20)
            for r, seed, v in ((0, 0, 0.5), (0, 1, 0.6), (1, 0, 0.7), (1, 1, 1.0))]
    diff = ladder_rows(pd.DataFrame(rows)).iloc[2]
    assert diff["row"] == "minus the row below" and diff["mqar"] == "0.3 ± 0.141"  # (0.2, 0.4) paired by seed

    final = pd.DataFrame([
        dict(model="a", task="listops", metric="accuracy", status="ok", value=0.9, baseline=0.2, step=50, wall_s=10.0,
             tokens_per_s=1e3, error=None),
        dict(model="b", task="listops", metric="accuracy", status="ok", value=0.2, baseline=0.2, step=4, wall_s=160.0,
             tokens_per_s=10.0, error=None, train_config={"warmup": 50}),
        dict(model="c", task="ptb_char", metric="bits_per_byte", status="ok", value=2.0, baseline=4.5, step=50,
             wall_s=10.0, tokens_per_s=1e3, error=None),
        dict(model="d", task="ptb_char", metric="bits_per_byte", status="ok", value=4.6, baseline=4.5, step=50,
             wall_s=10.0, tokens_per_s=1e3, error=None),
        dict(model="e", task="ptb_char", metric="bits_per_byte", status="error", value=None, baseline=None, step=None,
             wall_s=None, tokens_per_s=None, error="RuntimeError: out of memory"),
    ])
    table = unlearned(final)
    assert list(table["model"]) == ["b", "d", "e"]
    assert table.iloc[0]["s/step"] == "40" and table.iloc[2]["value"] == "error" and "memory" in table.iloc[2]["why"]
    assert table.iloc[0]["why"].startswith("the budget ended in the warmup (step 4 of 50)")
    assert table.iloc[1]["why"] == ""  # no recipe: nothing said


def test_an_interrupted_grid_goes_on_where_it_stopped(smoke_inline):
    from bench.bakeoff.plan import finished

    specs = plan("smoke", steps=1)
    first = next(r for r in smoke_inline if r.get("final") and r["cell"] == specs[0]["cell"])
    todo, kept = finished(specs, [first, {**first, "cell": specs[1]["cell"], "status": "error"}])
    assert [s["cell"] for s in kept] == [specs[0]["cell"]]  # finished: kept
    assert [s["cell"] for s in todo] == [s["cell"] for s in specs[1:]]  # the failed cell runs again
    assert finished(plan("smoke", steps=2), [first])[1] == []  # another budget is another cell


def test_report_keeps_a_cells_last_run_and_its_error_text(tmp_path):
    """A cell that failed and ran again counts once (its last run); a failure's reason
    survives the report's frame (drift records' numeric "error" does not claim the column)."""
    from bench import results as res
    from reports import data
    from reports.context import Context
    from reports.palette import Palette
    from reports.sections.bakeoff import finals, unlearned

    base = dict(family="elman", task="mqar", grid="ladder", seed=0, split="test", final=True, budget_minutes=2.0,
                budget_steps=10)
    path = tmp_path / "r.jsonl"
    failed = res.new_record("train", run_id="a", train_id="a", env=None, cell="elman-rung0-free/mqar", status="error",
                            error="OutOfMemoryError: killed", **base)
    again = res.new_record("train", run_id="b", train_id="b", env=None, cell="elman-rung0-free/mqar", status="ok", metric="accuracy",
                           value=0.5, baseline=0.1, step=10, **base)
    other = res.new_record("train", run_id="c", train_id="c", env=None, cell="elman-rung1-free/mqar", status="error",
                           error="RuntimeError: boom", **base)
    for r in (failed, again, other):
        res.append(path, r)
    final = finals(Context(data.read([path]), Palette([])), grids=("ladder",))
    assert sorted(zip(final["cell"], final["status"])) == [("elman-rung0-free/mqar", "ok"), ("elman-rung1-free/mqar", "error")]
    assert list(unlearned(final)["why"]) == ["RuntimeError: boom"]
