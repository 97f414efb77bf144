"""bench/gpu.py, the GPU validation driver: its plan for a GPU run (checked, never run
here), its step handling (a failure is recorded and the next steps run), and a reduced
dry run end to end on the CPU (one op, about 15 s)."""

import json
import subprocess
import sys

import pytest

import backends
from bench import gpu


def _run(tmp_path, dry: bool, ops=None, argv=()) -> gpu.Run:
    return gpu.Run(dry=dry, ops=list(ops or gpu.OPS), out=tmp_path / "run", wheels=tmp_path / "whl",
                   site=tmp_path / "site", argv=list(argv))


def _argv(step: gpu.Step) -> list[list[str]]:
    return [c() if callable(c) else c for c in step.commands]


def test_driver_ops_are_the_registry_ops():
    assert gpu.OPS == tuple(backends.OPS)
    assert set(gpu.DRY_CASES) == set(backends.OPS)


def test_gpu_plan_runs_the_strict_matrix_and_the_full_suite_on_cuda(tmp_path, monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    run = _run(tmp_path, dry=False)
    steps = {s.name: s for s in gpu.plan(run)}
    assert tuple(steps) == gpu.STEPS == ("wheels", "environment", "compile", "roofline", "matrix", "ops", "drift",
                                         "overhead", "models", "report")
    assert steps["wheels"].func is gpu.install_wheels

    (roofline,) = _argv(steps["roofline"])
    assert roofline[-4:] == ["roofline", "--device", "cuda", "--refresh"]

    cuda, matrix = _argv(steps["matrix"])  # CUDA first: without it the matrix would pass in the simulators
    assert "torch.cuda.is_available()" in cuda[-1]
    assert "--strict-backends" in matrix and f"--junitxml={run.out / 'junit.xml'}" in matrix
    assert all(t in matrix for t in gpu.MATRIX_TESTS)
    assert matrix[matrix.index("-k") + 1] == "not numba_cpu and not float64"  # torch, triton, numba_cuda; f32, bf16

    (ops,) = _argv(steps["ops"])
    assert ops[ops.index("ops"):] == ["ops", "--suite", "full", "--peers", "--mode", "forward,forward_backward",
                                      "--device", "cuda", "--out", str(run.out / "results.jsonl")]
    (compile_all,) = _argv(steps["compile"])  # first after the environment, the simulators off
    assert compile_all[compile_all.index("gpu-compile"):] == ["gpu-compile", "--out", str(run.out / "gpu_compile.jsonl")]
    assert not steps["compile"].simulated and steps["matrix"].simulated
    (models,) = _argv(steps["models"])
    assert models[models.index("models"):] == ["models", "--suite", "quick", "--device", "cuda", "--out",
                                               str(run.out / "models.jsonl")]
    (drift,) = _argv(steps["drift"])
    assert drift[drift.index("drift"):] == ["drift", "--device", "cuda", "--out", str(run.out / "drift.jsonl")]
    (report,) = _argv(steps["report"])  # only the results files that exist by then
    assert report[report.index("report"):] == ["report", "-o", str(run.out / "report.html")]

    env = run.env()  # the GPU run never inherits the simulators, and keeps its ceilings with the results
    assert "TRITON_INTERPRET" not in env and "NUMBA_ENABLE_CUDASIM" not in env
    assert env["PYTHONPATH"].split(":")[:2] == [str(gpu.REPO), str(run.site)]
    assert env["ARSENAL_CACHE_DIR"] == str(run.out)


def test_dry_plan_uses_the_simulators_and_tiny_cases(tmp_path, monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    run = _run(tmp_path, dry=True, ops=["parallel_scan", "stack_step"])
    steps = {s.name: s for s in gpu.plan(run)}
    (matrix,) = _argv(steps["matrix"])
    assert "(parallel_scan or stack_step)" in matrix[matrix.index("-k") + 1]
    ops = _argv(steps["ops"])
    assert len(ops) == 2 and all("--device" in c and c[c.index("--device") + 1] == "cpu" for c in ops)
    assert ops[0][ops[0].index("--case") + 1] == gpu.DRY_CASES["parallel_scan"]
    assert run.env()["TRITON_INTERPRET"] == "1" and run.env()["NUMBA_ENABLE_CUDASIM"] == "1"
    every = {s.name: s for s in gpu.plan(_run(tmp_path, dry=True))}  # all ops: the matrix has them all,
    assert _argv(every["matrix"])[0][-2].endswith("not numba_cpu and not float64")  # the op step the peers' ops
    assert [c[c.index("--op") + 1] for c in _argv(every["ops"])] == list(gpu.DRY_OPS)


def test_results_directory_is_dated_and_named_after_the_gpu(tmp_path):
    assert gpu.slug("NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3"
    first = gpu.results_dir(tmp_path, "NVIDIA H200")
    assert first.name.endswith("-nvidia-h200") and len(first.name) == len("2026-11-25-nvidia-h200")
    first.mkdir()
    assert gpu.results_dir(tmp_path, "NVIDIA H200").name == first.name + "-2"  # a second run the same day


def test_a_failing_step_is_recorded_and_the_next_steps_still_run(tmp_path, monkeypatch, capsys):
    def fake_plan(run):
        say = [sys.executable, "-c"]
        return [gpu.Step("first", "fails", [say + ["import sys; print('first out'); sys.exit(3)"]]),
                gpu.Step("second", "runs anyway", [say + ["print('second out')"]]),
                gpu.Step("third", "raises", func=lambda run: 1 / 0)]

    monkeypatch.setattr(gpu, "plan", fake_plan)
    run = _run(tmp_path, dry=True, argv=["--dry"])
    assert gpu.execute(run) == 1
    log = (run.out / "gpu.log").read_text()
    assert "first out" in log and "== first: FAILED" in log and "exit code 3" in log
    assert "second out" in log and "== second: ok" in log
    assert "ZeroDivisionError" in log and "== third: FAILED" in log
    summary = (run.out / "SUMMARY.md").read_text()
    assert "| first | FAILED |" in summary and "| second | ok |" in summary and "| third | FAILED |" in summary
    assert "2 failed step(s): first, third" in summary
    assert (run.out / "COMMAND").read_text().strip().endswith("-m bench.gpu --dry")
    assert "second out" in capsys.readouterr().out  # streamed to the terminal too

    again = _run(tmp_path / "again", dry=True)  # --steps second: the others are skipped, as not selected
    again.selected = ["second"]
    assert gpu.execute(again) == 0
    assert "== first: skipped: not selected (--steps)" in (again.out / "gpu.log").read_text()


def test_reduced_dry_run_end_to_end(tmp_path):
    """The real driver on one op: wheels (none carried), environment, roofline, matrix,
    op step, and the optional steps run or skipped as the CLI has them."""
    # the compile step is left out here (--steps): tests/test_gpu_compile.py compiles for real
    unusable = backends.registry.BACKENDS_REGISTRY["triton"].probe()
    if unusable:  # the matrix is strict: an interpreter that cannot run fails it, as it should
        pytest.skip(unusable)
    proc = subprocess.run([sys.executable, "-m", "bench.gpu", "--dry", "--op", "parallel_scan", "--steps",
                           "roofline,matrix,ops,drift,overhead,models,report",
                           "--out-root", str(tmp_path), "--wheels", str(tmp_path / "no-wheels")],
                          cwd=gpu.REPO, capture_output=True, text=True, timeout=300)
    (out,) = tmp_path.iterdir()
    assert out.name.endswith("-cpu-dry")
    log = (out / "gpu.log").read_text()
    assert proc.returncode == 0, log[-3000:]
    for name in ("gpu.log", "SUMMARY.md", "COMMAND", "environment.json", "junit.xml", "results.jsonl"):
        assert (out / name).exists(), name
    for step in ("wheels", "environment", "roofline", "matrix", "ops"):
        assert f"== {step}: ok" in log
    assert "All steps passed." in (out / "SUMMARY.md").read_text()
    assert "TRITON_INTERPRET=1 NUMBA_ENABLE_CUDASIM=1" in (out / "COMMAND").read_text()
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert {r["op"] for r in records} == {"parallel_scan"}
    assert any(r["backend"] == "torch" and r["status"] == "ok" for r in records)
    assert any(r["backend"] == "accelerated_scan" and r["status"] == "unavailable" for r in records)  # CUDA only


def _wheel(directory, project, module):
    import zipfile

    path = directory / f"{project}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{module}/__init__.py", "")
        z.writestr(f"{project}-1.0.dist-info/METADATA", f"Name: {project}\nVersion: 1.0\n")
    return path


def test_only_the_wheels_this_python_lacks_are_installed(tmp_path):
    wheels = [_wheel(tmp_path, "pytest", "pytest"),  # installed here: the machine's own version wins
              _wheel(tmp_path, "jsonfork", "json"),  # another project's module, importable already
              _wheel(tmp_path, "zz_arsenal_new", "zz_arsenal_new")]
    install, left_out = gpu.to_install(wheels, sys.path)
    assert install == wheels[2:]
    assert left_out == {"pytest": "installed", "jsonfork": "json importable already"}
