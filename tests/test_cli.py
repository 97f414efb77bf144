"""The arsenal CLI in-process, on tiny cases: list, check, ops (gate, statuses, results
file), compare, profile; exit codes. Figures are never asserted, only what was recorded."""

import json

import pytest

from backends.check import CheckResult
from bench import cli, env, results, roofline
from bench.ops import gate as gates
from bench.commands import _args

TINY_SCAN = "B=2,T=8,D=4"
FAST = ["--budget", "0.05", "--settle-ms", "0"]


def fake_ceilings(tmp_path, monkeypatch, gbps=1e6, gflops=1e6):
    """Ceilings in a private cache so no command measures the machine."""
    monkeypatch.setenv("ARSENAL_CACHE_DIR", str(tmp_path / "cache"))
    env.fix_threads()
    data = {"fingerprint": env.machine_fingerprint("cpu"), "device": "cpu", "measured_at": "test",
            "copy": [{"bytes": 1 << 20, "gbps": gbps}], "copy_gbps": gbps,
            "matmul_gflops": {"float32": gflops, "bfloat16": gflops},
            "env": env.environment("cpu")}
    roofline._write_atomic(roofline.cache_path("cpu"), data)


def test_list_shows_every_op_and_backend(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("parallel_scan", "nsm_route", "torch", "numba_cpu", "torch_compile"):
        assert name in out


def test_check_one_op_on_torch_passes(capsys):
    assert cli.main(["check", "--op", "parallel_scan", "--backend", "torch", "--dtype", "float32"]) == 0
    out = capsys.readouterr().out
    assert "parallel_scan" in out and "ok" in out and "all checked pairs pass" in out


def test_bad_names_exit_2_listing_the_valid_ones(capsys):
    assert cli.main(["check", "--op", "parallel_scan,nope"]) == 2
    err = capsys.readouterr().err
    assert "'nope'" in err and "parallel_scan" in err and "stack_step" in err
    assert cli.main(["ops", "--backend", "cuda_magic"]) == 2
    assert "torch_compile" in capsys.readouterr().err
    assert cli.main(["ops", "--mode", "sideways"]) == 2
    assert cli.main(["ops", "--case", "B=2", "--op", "parallel_scan,stack_step"]) == 2
    assert cli.main(["nonsense"]) == 2
    assert cli.main(["ops", "--device", "tpu"]) == 2
    assert "--device" in capsys.readouterr().err
    assert cli.main(["models", "--family", "elman", "--peers", "torch_compile,jax_jit"]) == 2
    err = capsys.readouterr().err
    assert "'jax_jit'" in err and "torch_compile_model" in err
    assert cli.main(["models", "--family", "elman", "--peers", "torch_compile", "--no-peers"]) == 2
    assert "--no-peers" in capsys.readouterr().err


def test_parse_case():
    assert _args.parse_case("B=4,T=256,bound=1.0,h0=false,act=relu") == {
        "B": 4, "T": 256, "bound": 1.0, "h0": False, "act": "relu"}
    with pytest.raises(cli.UsageError):
        _args.parse_case("B4")


def test_ops_on_a_tiny_case_appends_loadable_records(tmp_path, monkeypatch, capsys):
    fake_ceilings(tmp_path, monkeypatch)
    out = tmp_path / "r.jsonl"
    argv = ["ops", "--op", "parallel_scan", "--backend", "torch", "--case", TINY_SCAN,
            "--mode", "forward,forward_backward", "--out", str(out), *FAST]
    assert cli.main(argv) == 0
    df = results.load(out)
    assert list(df["mode"]) == ["forward", "forward_backward"] and set(df["status"]) == {"ok"}
    row = df.iloc[0]
    assert len(row["samples_ns"]) == row["reps"] > 0 and row["median_ns"] > 0
    assert row["steal_pct"] is None or 0 <= row["steal_pct"] <= 100
    assert row["speedup_vs_torch"] == 1.0 and row["speedup_vs_torch_compile"] is None
    assert row["env"]["threads"]["torch"] >= 1 and "torch" in row["env"]["packages"]
    gate = df.iloc[1]["gate"]  # forward_backward: gradients on the test cases, the case itself forward only
    assert gate["ok"] and {"case": {"B": 2, "T": 8, "D": 4}, "grad": False, "against": "reference"} in gate["cases"]
    assert all(c["grad"] for c in gate["cases"] if c["case"] != {"B": 2, "T": 8, "D": 4})
    assert "parallel_scan" in capsys.readouterr().out


def test_a_figure_over_the_roofline_is_flagged_not_reported(tmp_path, monkeypatch, capsys):
    fake_ceilings(tmp_path, monkeypatch, gbps=1e-9, gflops=1e-9)
    out = tmp_path / "r.jsonl"
    assert cli.main(["ops", "--op", "parallel_scan", "--backend", "torch", "--case", TINY_SCAN, "--out", str(out),
                     *FAST]) == 0
    (rec,) = results.read(out)
    assert rec["status"] == "wrong_model" and rec["pct_roofline"] > 100 and "wrong" in rec["error"]
    assert "wrong model" in capsys.readouterr().out


def test_a_pair_failing_the_gate_is_recorded_incorrect_and_never_timed(tmp_path, monkeypatch):
    fake_ceilings(tmp_path, monkeypatch)

    def failing(op, backend, case, dtype, device, seed=0, grad=True, fn=None, oracle=None):
        return CheckResult(op, backend, dict(case), "float32", str(device), ok=False, forward_error=3.0,
                           problems=["h: error 3x the tolerance"])

    monkeypatch.setattr(gates, "check_pair", failing)
    out = tmp_path / "r.jsonl"
    assert cli.main(["ops", "--op", "parallel_scan", "--backend", "torch", "--case", TINY_SCAN, "--out", str(out),
                     *FAST]) == 1
    (rec,) = results.read(out)
    assert rec["status"] == "incorrect" and "3x the tolerance" in rec["error"]
    assert rec.get("samples_ns") is None and rec.get("median_ns") is None


def test_a_peer_failing_the_gate_is_reported_but_does_not_fail_the_run(tmp_path, monkeypatch, capsys):
    fake_ceilings(tmp_path, monkeypatch)
    real = gates.check_pair

    def peer_fails(op, backend, case, dtype, device, seed=0, grad=True, fn=None, oracle=None):
        if backend == "torch_compile":
            return CheckResult(op, backend, dict(case), "float32", str(device), ok=False, forward_error=3.0,
                               problems=["h: error 3x the tolerance"])
        return real(op, backend, case, dtype, device, seed=seed, grad=grad, fn=fn, oracle=oracle)

    monkeypatch.setattr(gates, "check_pair", peer_fails)
    out = tmp_path / "r.jsonl"
    assert cli.main(["ops", "--op", "parallel_scan", "--backend", "torch,torch_compile", "--case", TINY_SCAN,
                     "--out", str(out), *FAST]) == 0
    by_name = {r["backend"]: r for r in results.read(out)}
    assert by_name["torch"]["status"] == "ok"
    assert by_name["torch_compile"]["status"] == "incorrect" and by_name["torch_compile"].get("samples_ns") is None
    assert "failed the correctness gate" in capsys.readouterr().out


def test_unavailable_pairs_are_recorded_with_the_reason(tmp_path, monkeypatch):
    fake_ceilings(tmp_path, monkeypatch)
    out = tmp_path / "r.jsonl"
    assert cli.main(["ops", "--op", "parallel_scan", "--backend", "torch,accelerated_scan", "--case", TINY_SCAN,
                     "--out", str(out), *FAST]) == 0
    by_name = {r["backend"]: r for r in results.read(out)}
    assert by_name["torch"]["status"] == "ok"
    assert by_name["accelerated_scan"]["status"] == "unavailable" and by_name["accelerated_scan"]["error"]


def test_compare_two_result_files(tmp_path, capsys):
    rec = {"op": "parallel_scan", "backend": "torch", "variant": None, "case_id": "B2-T8-D4", "dtype": "float32",
           "mode": "forward", "device": "cpu", "status": "ok"}
    old, new = tmp_path / "old.jsonl", tmp_path / "new.jsonl"
    results.append(old, dict(rec, samples_ns=[100 + i % 3 for i in range(30)], median_ns=101))
    results.append(new, dict(rec, samples_ns=[200 + i % 3 for i in range(30)], median_ns=201))
    assert cli.main(["compare", str(old), str(new)]) == 0
    assert "slower" in capsys.readouterr().out
    assert cli.main(["compare", str(old), str(new), "--fail-on-slower"]) == 1
    assert cli.main(["compare", str(old), str(tmp_path / "missing.jsonl")]) == 2


def test_profile_writes_a_chrome_trace_and_a_table(tmp_path, capsys):
    argv = ["profile", "--op", "parallel_scan", "--backend", "torch", "--case", TINY_SCAN, "--steps", "2",
            "--out-dir", str(tmp_path)]
    assert cli.main(argv) == 0
    (trace,) = tmp_path.glob("*.trace.json")
    assert "parallel_scan/torch/forward" in json.dumps(json.loads(trace.read_text()))
    (table,) = tmp_path.glob("*.table.txt")
    assert "Self CPU" in table.read_text()


def test_python_dash_m_bench_runs_the_cli():
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(cli.__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-m", "bench", "ops", "--op", "nope"], capture_output=True, text=True,
                          cwd=repo)
    assert proc.returncode == 2 and "unknown op 'nope'" in proc.stderr


def test_run_checks_then_times_with_plain_functions_then_writes_the_report(tmp_path, monkeypatch, capsys):
    """``arsenal run`` composes library calls (the check, the op suite, the model grid)
    with configs (no Namespaces) and ends with reports.write_report when it exists,
    skipping it quietly when not."""
    import reports
    from bench.modelbench import grid as models
    from bench.ops import check
    from bench.ops import time_ops as ops

    calls = []
    monkeypatch.setattr(check, "check", lambda sel, console: calls.append(("check", sel)) or (0, []))
    monkeypatch.setattr(models, "profile", lambda runs, bench, console: calls.append(("models", runs)) or [])
    monkeypatch.setattr(ops, "time_ops", lambda cfg, console, checked=(): calls.append(("ops", cfg)) or [])
    monkeypatch.setattr(reports, "write_report", lambda paths, out: calls.append(("report", paths, out)) or out,
                        raising=False)
    out = str(tmp_path / "r.jsonl")
    assert cli.main(["run", "--out", out]) == 0
    (_, checked), (_, timed), (_, runs), report = calls
    assert {r.family for r in runs} >= {"transformer", "fastlane", "elman", "stackformer", "nsm"}
    assert checked.names is None and not checked.peers and checked.dtypes is None
    assert timed.selection.peers and timed.selection.suite == "quick" and timed.out == out
    assert timed.selection.modes == ("forward", "forward_backward")
    assert report == ("report", [out], "out/report.html") and "out/report.html" in capsys.readouterr().out
    monkeypatch.delattr(reports, "write_report")
    calls.clear()
    assert cli.main(["run", "--out", out]) == 0 and [c[0] for c in calls] == ["check", "ops", "models"]
    assert "report" not in capsys.readouterr().out
    calls.clear()
    assert cli.main(["run", "--out", out, "--no-models"]) == 0 and [c[0] for c in calls] == ["check", "ops"]
    assert "report" not in capsys.readouterr().out
