"""The two suite front ends run for real, each in its own process as a user starts them:
pytest-benchmark (``pytest suites/pytest --benchmark-only``) and the asv benchmark module.

Both must time the registry's pairs side by side, leave OpenMP's wait policy as the user
has it and pin the thread counts. The roofline cache is pointed at a temporary directory
holding ceilings for this machine's fingerprint, so nothing measures the machine here.
"""

import json
import os
import subprocess
import sys
import textwrap

from bench import env
from bench.regress.worktree import REPO_ROOT

SIMULATION = ("TRITON_INTERPRET", "NUMBA_ENABLE_CUDASIM")  # timed runs never simulate
CEILINGS = {"device": "cpu", "copy": [{"bytes": 1 << 20, "threads": 2, "gbps": 1000.0}], "copy_gbps": 1000.0,
            "matmul_gflops": {"float32": 1e5, "bfloat16": 1e5}}


def _run(args, env_extra, tmp_path, timeout=300):
    environ = {k: v for k, v in os.environ.items() if k not in SIMULATION}
    environ.update(ARSENAL_CACHE_DIR=str(tmp_path / "cache"), **env_extra)
    fingerprint = subprocess.run(
        [sys.executable, "-c", "from bench import env; env.fix_threads(); print(env.machine_fingerprint('cpu'))"],
        cwd=REPO_ROOT, env=environ, capture_output=True, text=True, check=True).stdout.strip()
    (tmp_path / "cache").mkdir()
    path = tmp_path / "cache" / f"roofline-{fingerprint}.json"
    path.write_text(json.dumps(dict(CEILINGS, fingerprint=fingerprint)))
    done = subprocess.run(args, cwd=REPO_ROOT, env=environ, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def test_pytest_benchmark_times_the_suite_side_by_side(tmp_path):
    out = tmp_path / "bench.json"
    # the op file alone: suites/pytest also holds the model and overhead benchmarks
    _run([sys.executable, "-m", "pytest", "suites/pytest/test_bench_ops.py", "--benchmark-only", "-q",
          "-p", "no:cacheprovider",
          "--arsenal-suite", "stable", "--arsenal-modes", "forward", "--arsenal-names", "torch,torch_compile",
          "-k", "stack_step", f"--benchmark-json={out}", "--benchmark-min-rounds=3", "--benchmark-max-time=0.02",
          "--benchmark-warmup=off"], {}, tmp_path)
    benches = json.loads(out.read_text())["benchmarks"]
    assert {b["extra_info"]["backend"] for b in benches} == {"torch", "torch_compile"}
    assert len({b["group"] for b in benches}) == 1  # one group per op, case and mode
    for b in benches:
        info = b["extra_info"]
        assert b["group"].startswith("stack_step ") and b["group"].endswith(" forward")
        assert info["mix"] == {"stack_step": info["backend"]} and info["gate_forward_error"] <= 1.0
        assert info["threads"]["torch"] == os.cpu_count()
        assert info["flops"] > 0 and info["bytes"] > 0 and 0 < info["pct_roofline"] < 100
        assert info["load"]["verdict"] in ("quiet", "disturbed") and info["load"]["cores"] == os.cpu_count()
        assert b["stats"]["rounds"] >= 3


ASV_PROBE = textwrap.dedent("""
    import json, os
    from asv_runner.benchmarks.mark import SkipNotImplemented
    import suites.asv.benchmarks as b
    import torch
    bench = b.ParallelScan()
    case = next(iter(bench.cases))
    bench.setup(case, "forward", "torch")
    bench.time_op(case, "forward", "torch")
    try:
        bench.setup(case, "forward", "accelerated_scan")
        skipped = None
    except SkipNotImplemented as exc:
        skipped = str(exc)
    print(json.dumps({"params": bench.params, "policy": os.environ.get("OMP_WAIT_POLICY"),
                      "threads": torch.get_num_threads(), "compile": bench.track_compile_seconds(case, "forward", "torch"),
                      "skipped": skipped, "classes": [n for n in dir(b) if isinstance(getattr(b, n), type)
                                                      and issubclass(getattr(b, n), b._OpBenchmark)]}))
""")


def test_asv_module_pins_threads_and_skips_what_cannot_run(tmp_path):
    done = _run([sys.executable, "-c", ASV_PROBE],
                {"ARSENAL_SUITE": "stable", "ARSENAL_MODES": "forward", "ARSENAL_NAMES": "torch,numba_cpu,accelerated_scan"},
                tmp_path)
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["policy"] == os.environ.get("OMP_WAIT_POLICY") and got["threads"] == os.cpu_count()
    cases, modes, names = got["params"]
    assert modes == ["forward"] and "torch" in names and "accelerated_scan" in names and "triton" not in names
    assert got["skipped"] and "accelerated" in got["skipped"]  # a CUDA-only peer: skipped with the reason
    assert got["compile"] >= 0.0
    assert "StackStep" in got["classes"] and "ParallelScan" in got["classes"]


def test_fix_threads_holds_after_numba_launches_its_threads():
    """A fresh process pinned to one thread stays at one for torch: Numba's OpenMP layer
    shares torch's libgomp and its launch set the process's thread count to every core."""
    code = ("import torch\nfrom bench import env\ncounts = env.fix_threads(1)\n"
            "print(counts['torch'], torch.get_num_threads())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split() == ["1", "1"]
