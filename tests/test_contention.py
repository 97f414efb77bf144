"""bench.load: contention by other processes is seen per timed block, recorded in each
record's ``load``, re-measured once, flagged in the summary and weakens ``compare``.

One test makes real contention (busy-loop processes holding every core) and times a
tiny op through the runner; the others feed the runner and ``assess`` mocked readings."""

import os
import subprocess
import sys
import time

import pytest
from rich.console import Console

from bench import compare, load

from bench.ops import gate, plan, runner, summary
from bench.timing import TimingConfig

CEIL = {"fingerprint": "t", "copy": [{"bytes": 1, "gbps": 1e9}], "copy_gbps": 1e9,
        "matmul_gflops": {"float32": 1e9, "bfloat16": 1e9}}
QUICK = TimingConfig(warmup_s=0.0, min_reps=3, max_reps=30, budget_s=0.3, settle_s=0.0)
TINY = dict(B=2, T=8, D=4)


def _group(names=("torch",)):
    (group,) = plan.groups(plan.Selection(ops=("parallel_scan",), names=names, case=TINY))
    return group


def _runner(monkeypatch, **kw):
    monkeypatch.setattr(gate.Gate, "checks", lambda self, op, name, case, grad: [])  # no gate cost here
    return runner.Runner(runner.RunConfig(timing=QUICK), ceilings=CEIL, **kw)


@pytest.mark.skipif(not os.path.exists("/proc/loadavg"), reason="reads the run queue from /proc (Linux)")
def test_busy_processes_on_every_core_make_the_record_disturbed(monkeypatch):
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(max(2, os.cpu_count() or 1))]
    try:
        time.sleep(0.3)  # the busy loops are running
        pauses = []
        (rec,) = _runner(monkeypatch, sleep=pauses.append).run_group(_group())
    finally:
        for p in busy:
            p.kill()
            p.wait()
    assert rec["status"] == "ok" and rec["reps"] > 0
    got = rec["load"]
    assert got["verdict"] == "disturbed", got
    assert got["runnable"] >= 1 and got["cores"] == os.cpu_count()
    assert 0 < got["cpu_share"] and 0 < got["thread_share"] <= 1.05
    assert got["remeasured"] and pauses == [runner.RunConfig().load.pause_s]  # timed again after a pause


@pytest.mark.skipif(not os.path.exists("/proc/loadavg"), reason="reads the run queue from /proc (Linux)")
def test_watched_block_under_busy_processes_is_disturbed():
    """``load.watched``, which pytest-benchmark's extra_info gets, judges a block alike."""
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(max(2, os.cpu_count() or 1))]
    try:
        time.sleep(0.3)
        with load.watched("cpu") as seen:
            end = time.perf_counter() + 0.3
            while time.perf_counter() < end:
                pass
    finally:
        for p in busy:
            p.kill()
            p.wait()
    assert seen["verdict"] == "disturbed" and seen["runnable"] >= 1, seen


class FakeWatch:
    """Readings 1 ms apart; ``others`` and the CPU the timing thread got per ms, scripted
    per call (the last value repeats)."""

    def __init__(self, others, share=1.0, process_share=None):
        self.others, self.calls = list(others), 0
        self.share = share
        self.process_share = share if process_share is None else process_share  # all threads, per ms of wall
        self.wall = self.cpu = self.process = 0

    def __call__(self):
        i = min(self.calls, len(self.others) - 1)
        self.calls += 1
        self.wall += 1_000_000
        self.cpu += int(self.share * 1_000_000)
        self.process += int(self.process_share * 1_000_000)
        return load.Reading(self.wall, self.process, self.cpu, self.others[i])


def test_a_quiet_machine_is_quiet_and_not_measured_again(monkeypatch):
    pauses = []
    (rec,) = _runner(monkeypatch, watch=FakeWatch([0]), sleep=pauses.append).run_group(_group())
    assert rec["load"]["verdict"] == "quiet" and rec["load"]["runnable"] == 0
    assert rec["load"]["thread_share"] == 1.0 and "remeasured" not in rec["load"]
    assert pauses == []


def test_a_disturbed_group_is_measured_again_and_keeps_the_second_timing(monkeypatch):
    watch = FakeWatch([5] * 8 + [0])  # crowded for the first blocks, quiet from then on
    pauses = []
    recs = _runner(monkeypatch, watch=watch, sleep=pauses.append).run_group(_group(("torch", "torch_compile")))
    assert len(pauses) == 1
    for rec in recs:
        assert rec["load"]["verdict"] == "quiet" and rec["load"]["remeasured"], rec["load"]


def test_assess_reads_the_queue_against_the_free_cores_and_the_thread_share():
    def blocks(others, share=1.0, n=4, process_share=None):
        w = FakeWatch([others], share, process_share)
        return [(w(), w()) for _ in range(n)]

    assert load.assess(blocks(0), threads=2, cores=2)["verdict"] == "quiet"
    assert load.assess(blocks(2), threads=2, cores=2)["verdict"] == "disturbed"
    assert load.assess(blocks(2), threads=2, cores=8)["verdict"] == "quiet"  # six cores were free
    starved = load.assess(blocks(0, share=0.5), threads=2, cores=2)
    assert starved["verdict"] == "disturbed" and starved["thread_share"] == 0.5 and starved["cpu_share"] == 0.25
    asleep = load.assess(blocks(0, share=0.3, process_share=1.9), threads=2, cores=2)
    assert asleep["verdict"] == "quiet"  # the caller sleeps while the workers compute (Numba's workqueue)
    gpu = load.assess(blocks(0, share=0.5), threads=2, cores=2, cpu=False)
    assert gpu["verdict"] == "quiet"  # a GPU synchronize may sleep: the thread share is not asked
    assert load.assess(blocks(None), threads=1, cores=2)["runnable"] is None  # no /proc: the share alone decides
    assert load.assess([], threads=2) is None


def test_the_real_readings_are_sane():
    r = load.read()
    assert r.wall_ns > 0 and r.process_cpu_ns >= r.thread_cpu_ns >= 0
    assert r.others is None or r.others >= 0


def _record(verdict, backend="torch", center=100.0):
    return {"op": "parallel_scan", "backend": backend, "variant": None, "case_id": "B2-T8-D4", "dtype": "float32",
            "mode": "forward", "device": "cpu", "status": "ok", "samples_ns": [center + i % 3 for i in range(30)],
            "median_ns": center, "rel_iqr": 0.02, "error": None,
            "load": {"cpu_share": 0.3, "thread_share": 0.6, "runnable": 3.0, "cores": 2, "threads": 2,
                     "verdict": verdict}}


def test_the_summary_flags_disturbed_records_and_warns():
    console = Console(record=True, width=250)
    recs = [_record("disturbed"), _record("quiet", backend="numba_cpu")]
    summary.print_summary(console, recs)
    summary.warn_disturbed(console, recs)
    text = console.export_text()
    assert "load" in text and "disturbed" in text and "quiet" in text
    assert "WARNING: 1 of 2 record(s)" in text and "parallel_scan[torch] forward" in text
    console = Console(record=True, width=250)
    summary.warn_disturbed(console, [_record("quiet")])
    assert console.export_text() == ""


def test_compare_calls_a_disturbed_side_at_most_ambiguous():
    old, new = _record("quiet"), _record("disturbed", center=200.0)
    (change,) = compare.compare([old], [new])
    assert change.verdict == "ambiguous" and "new disturbed" in change.note and change.ratio > 1.9
    (change,) = compare.compare([old], [dict(new, load=dict(new["load"], verdict="quiet"))])
    assert change.verdict == "slower"
