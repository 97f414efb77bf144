"""Output sent to a file or a pipe (issue 22): ``arsenal ops`` prints one plain line per
group (what, i/n, elapsed) where rich's bar would print nothing until the end, and
torch.profiler's C++ chatter (kineto's ``USDT ... profiler_start/stop``, c10's ``Memory
block of unknown size``) is dropped at file descriptor 2 while every other line passes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import torch

from bench.modelbench.profile import peak_memory
from bench.ops.profile import PROFILER_NOISE, quiet_profiler
from bench.progress import ProgressLines
from tests.test_cli import FAST, TINY_SCAN, fake_ceilings

ROOT = Path(__file__).resolve().parents[1]
NOISE_WORDS = ("USDT", "profiler_start", "profiler_stop", "Memory block of unknown size")


def test_ops_to_a_pipe_prints_a_line_per_group(tmp_path, monkeypatch):
    fake_ceilings(tmp_path, monkeypatch)  # ARSENAL_CACHE_DIR: the subprocess measures nothing
    argv = ["ops", "--op", "parallel_scan", "--backend", "torch", "--case", TINY_SCAN, "--mode",
            "forward,forward_backward", "--out", str(tmp_path / "r.jsonl"), *FAST]
    proc = subprocess.run([sys.executable, "-m", "bench", *argv], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = re.findall(r"^ops group (\d)/(\d): parallel_scan B2-T8-D4 float32 (\S+) \((\d+) s\)$", proc.stdout,
                       re.MULTILINE)
    assert [(i, n, mode) for i, n, mode, _ in lines] == [("1", "2", "forward"), ("2", "2", "forward_backward")]
    assert int(lines[0][3]) <= int(lines[1][3])  # elapsed since the suite began
    assert not any(w in proc.stdout + proc.stderr for w in NOISE_WORDS)


def test_progress_lines_are_silent_on_a_terminal():
    from rich.console import Console

    lines = ProgressLines(Console(force_terminal=True), "ops group", 3)
    lines.step("a")
    assert not lines.on and lines.done == 1


def test_profiler_noise_dropped_other_lines_pass(capfd):
    x = torch.randn(64, 64)  # allocated before the memory profile: c10 warns when the step frees it

    def step():
        nonlocal x
        x = x @ x
        os.write(2, b"a real problem from C\n")

    assert peak_memory(step, "cpu") > 0
    with quiet_profiler():
        print("a Python warning", file=sys.stderr)
    err = capfd.readouterr().err
    assert "a real problem from C" in err and "a Python warning" in err
    assert not any(w in err for w in NOISE_WORDS), err


def test_noise_pattern_matches_only_the_known_lines():
    assert PROFILER_NOISE.search(b"USDT:2026-12-06 09:43:47 11263:11263 SyncActivityProfilerHandler.cpp:52] "
                                 b"profiler_start\n")
    assert PROFILER_NOISE.search(b"[W1206 09:43:47.371633769 CPUAllocator.cpp:245] Memory block of unknown size was "
                                 b"allocated before the profiling started, profiler results will not include the "
                                 b"deallocation event\n")
    assert not PROFILER_NOISE.search(b"ERROR:2026-12-06 09:43:47 11263:11263 CuptiActivityApi.cpp:1] failed\n")
    assert not PROFILER_NOISE.search(b"[W1206 09:43:47 Module.cpp:1] a real warning about profiler_start\n")
