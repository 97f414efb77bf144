"""bench/results.py as the results schema: new_record stamps and refuses what the schema
does not declare; validate reads a failing field as missing and names it, drops a
record that cannot be placed, normalises the time, and never raises; every producer's
records (run here at tiny sizes, or the committed real ones) fit the schema exactly."""

from __future__ import annotations

import json
import re

import pytest

from bench import results
from bench.results import Kind, Problem, validate
from tests import report_records as rr


def fits(records: list[dict]) -> None:
    """Each record validates with no problem and declares every field it carries."""
    assert records
    for rec in records:
        rec = json.loads(json.dumps(results._clean(rec)))  # as append writes it and a reader reads it
        kind = results.kind_of(rec)
        clean, problems = validate(rec)
        assert problems == [] and clean is not None, f"{kind}: {[str(p) for p in problems]}"
        undeclared = set(rec) - set(results.KINDS[kind].all_fields())
        assert not undeclared, f"kind {kind!r} writes fields the schema does not declare: {sorted(undeclared)}"


def test_new_record_stamps_schema_run_time_and_environment():
    env = {"git": {"commit": rr.COMMIT, "dirty": False}, "cpu_count": 2}
    rec = results.new_record("drift", run_id="r1", env=env, op="parallel_scan", backend="torch", T=8, error=0.0)
    assert rec["schema"] == results.SCHEMA_VERSION and rec["kind"] == "drift" and rec["run_id"] == "r1"
    assert rec["env"] == env and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", rec["time"])
    assert validate(rec) == (rec, [])


def test_new_record_refuses_what_the_schema_does_not_declare():
    with pytest.raises(ValueError, match="kind 'gpu_compyle' is not declared; declared: op, model"):
        results.new_record("gpu_compyle", run_id="r", env=None)
    with pytest.raises(TypeError, match=r"kind 'drift': no declared field erorr \(add it to bench.results.KINDS"):
        results.new_record("drift", run_id="r", env=None, erorr=1.0)
    with pytest.raises(TypeError, match="time stamped here, not given"):
        results.new_record("drift", run_id="r", env=None, time="2026-01-01T00:00:00Z")


def test_a_new_kind_is_one_entry(monkeypatch):
    kind = Kind("gpu_compile", "compile time of a kernel", {"op": results.text(), "seconds": results.number(lo=0.0)},
                required=("op",))
    monkeypatch.setitem(results.KINDS, kind.name, kind)
    rec = results.new_record("gpu_compile", run_id="r", env=None, op="parallel_scan", seconds=-1.0)
    clean, problems = validate(rec)
    assert clean["seconds"] is None and [p.field for p in problems] == ["seconds"]
    assert validate(dict(rec, op=None))[0] is None


@pytest.mark.parametrize("value, problem", [
    (0, "median_ns: 0 is outside the sane range (0, 1e+15]; read as missing"),
    ("12", "median_ns: text '12' where a number belongs; read as missing"),
    (True, "median_ns: a flag True where a number belongs; read as missing"),
    (float("nan"), "median_ns: nan is not a finite number; read as missing"),
    (10 ** 400, "median_ns: an integer of 401 digits is outside the sane range (0, 1e+15]; read as missing"),
], ids=["zero", "text", "flag", "nan", "huge-integer"])
def test_a_failing_field_reads_as_missing_and_is_named(value, problem):
    rec = rr.real_records()[0]
    clean, problems = validate(dict(rec, median_ns=value))
    assert clean["median_ns"] is None and [str(p) for p in problems] == [problem]
    assert clean["samples_ns"] == rec["samples_ns"]  # the other fields stand


def test_nested_members_and_list_elements():
    rec = rr.real_records()[0]
    env = dict(rec["env"], git={"commit": 5, "dirty": "no"}, loadavg=[0.5, None, 1.0])
    clean, problems = validate(dict(rec, env=env, samples_ns=rec["samples_ns"][:3] + ["x"]))
    assert clean["env"]["git"] == {"commit": None, "dirty": None} and clean["env"]["loadavg"] is None
    assert clean["env"]["cpu"] == rec["env"]["cpu"] and clean["samples_ns"] is None
    assert sorted(map(str, problems)) == [
        "env.git.commit: an integer 5 where text belongs; read as missing",
        "env.git.dirty: text 'no' where a flag (true/false) belongs; read as missing",
        "env.loadavg: [1] is null; read as missing",
        "samples_ns: [3]: text 'x' where a number belongs; read as missing"]


def test_records_that_cannot_be_placed_are_dropped():
    rec = rr.real_records()[0]
    clean, (problem,) = validate([rec])
    assert clean is None and problem.field == "record" and problem.why.startswith("a list [{")
    assert validate(dict(rec, schema=2))[1] == [Problem("schema", "2 where this reader knows 1; record dropped")]
    assert validate(dict(rec, kind=7))[0] is None
    clean, problems = validate(dict(rec, backend=["torch"]))
    assert clean is None and str(problems[-1]) == "backend: required by kind 'op' and missing; record dropped"


def test_time_is_read_in_one_format_and_unknown_kinds_keep_their_fields():
    rec = rr.real_records()[0]
    assert validate(dict(rec, time="2026-11-25T17:20:20+01:00"))[0]["time"] == "2026-11-25T16:20:20Z"
    assert validate(dict(rec, time="2026-11-25T16:20:20.123456+00:00"))[0]["time"] == "2026-11-25T16:20:20Z"
    assert validate(dict(rec, time="yesterday"))[1] == [Problem("time", "'yesterday' is not an ISO 8601 time; "
                                                                         "read as missing")]
    future = {"schema": 1, "kind": "gpu_graph", "run_id": "r", "nodes": [1, "x"], "device": 3}
    clean, problems = validate(future)
    assert clean["nodes"] == [1, "x"] and clean["device"] is None and [p.field for p in problems] == ["device"]


def test_lone_surrogates_are_replaced_and_named():
    rec = rr.real_records()[0]
    clean, problems = validate(dict(rec, op="scan\ud800", env=dict(rec["env"], packages={"t\udc00": "1"})))
    assert clean["op"] == "scan\ufffd" and "t\ufffd" in clean["env"]["packages"]
    assert [p.field for p in problems] == ["op", "env.packages.t\ufffd"]
    json.dumps(clean, ensure_ascii=False).encode("utf-8")


def test_validate_is_idempotent_on_real_records():
    for rec in rr.real_records():
        clean, problems = validate(rec)
        assert problems == [] and validate(clean) == (clean, [])


def test_damaged_lines_python_cannot_hold_are_skipped(tmp_path):
    path = rr.write_lines(tmp_path / "r.jsonl", ["1" * 5000, "[" * 100_000 + "]" * 100_000])
    whys = [why for _, _, why in results.lines(path)]
    assert whys[0].startswith("line skipped: ValueError") and whys[1].startswith("line skipped: RecursionError")


# -- producers -----------------------------------------------------------------------
# Each runs at the smallest size its own tests use; their records must fit the schema.


def test_committed_real_records_fit():
    fits(rr.real_records())


def test_op_runner_records_fit(tmp_path, monkeypatch):
    from bench.ops import plan, runner
    from tests.test_bench_runner import CEIL, QUICK, SMALL

    run = runner.Runner(runner.RunConfig(timing=QUICK), out=tmp_path / "r.jsonl", ceilings=CEIL)
    (group,) = plan.groups(plan.Selection(ops=("parallel_scan",), names=("torch",), case=SMALL))
    run.run_group(group)
    fits(results.read(tmp_path / "r.jsonl"))


def test_model_bench_records_fit(tmp_path):
    from bench.modelbench.bench import ModelBench
    from tests.test_model_bench import FAST

    ModelBench(FAST, out=tmp_path / "r.jsonl").run(
        "nsm", "tiny", dict(d_model=16, n_layers=1, variant="simple"), 2, 8, ["torch", "triton"], peers=())
    recs = results.read(tmp_path / "r.jsonl")
    assert {results.kind_of(r) for r in recs} == {"model", "routing"}
    fits(recs)


def test_drift_overhead_equivalence_and_train_records_fit(tmp_path):
    from bench.modelbench.equivalence import equivalence
    from bench.ops import drift, overhead
    from bench.train import train
    from tests.test_overhead import FAST, FakeClock
    from tests.test_train import TinyClassify, config

    recs = drift.run(drift.DriftConfig(Ts=(8,)), ops=["parallel_scan"], names=["torch"])
    recs += overhead.run(FAST, ops=["parallel_scan"], names=["torch"], clock=FakeClock())
    recs.append(equivalence("transformer", "tiny", dict(d_model=16, n_heads=2, n_layers=1), "torch", steps=2, B=2, T=8))
    out = tmp_path / "train.jsonl"
    train(config(steps=2, eval_every=1, out=str(out)), task=TinyClassify(n_train=16, n_eval=8))
    recs += results.read(out)
    assert {results.kind_of(r) for r in recs} == {"drift", "overhead", "equivalence", "train"}
    fits(recs)
