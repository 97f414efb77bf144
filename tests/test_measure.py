"""bench/measure.py, the one measurement path of ops and models: errors isolated, the
others timed again, speedups against the baselines from the same timing."""

from __future__ import annotations

from bench import measure
from bench.results import BASELINES
from bench.timing import TimingConfig

CFG = measure.MeasureConfig(timing=TimingConfig(budget_s=0.05, min_reps=3, max_reps=6, warmup_s=0.0, block_s=0.0,
                                                settle_s=0.0))


def _busy(n):
    return lambda: sum(range(n))


def test_a_raising_candidate_is_an_error_and_the_others_are_timed():
    def broken():
        raise RuntimeError("kernel fell over")

    got = measure.group({"torch": (_busy(2000), lambda: None), "numba_cpu": (_busy(200), lambda: None),
                         "triton": (broken, lambda: None)}, CFG)
    assert got.errors == {"triton": "timing: RuntimeError: kernel fell over"}
    assert set(got.fields) == {"torch", "numba_cpu"}
    fast = got.fields["numba_cpu"]
    assert fast["reps"] >= 3 and fast["median_ns"] > 0 and fast["load"]["verdict"] in ("quiet", "disturbed")
    assert fast["speedup_vs_torch"] == got.fields["torch"]["median_ns"] / fast["median_ns"]
    lo, hi = fast["speedup_vs_torch_ci95"]
    assert lo <= fast["speedup_vs_torch"] <= hi
    assert got.fields["torch"]["speedup_vs_torch"] == 1.0 and got.fields["torch"]["speedup_vs_torch_ci95"] is None
    assert fast["speedup_vs_torch_compile"] is None  # that baseline was not in the group
    assert BASELINES == ("torch", "torch_compile")


def test_a_disturbed_group_is_timed_again_after_a_pause():
    """Readings that show the timing thread getting a tenth of the wall clock while eight
    other tasks want the cores: the group is disturbed, paused for, timed again."""
    from itertools import count

    from bench import load

    ticks = count()

    def starved():
        t = next(ticks)
        return load.Reading(wall_ns=t * 1_000_000, process_cpu_ns=t * 100_000, thread_cpu_ns=t * 100_000, others=8)

    slept = []
    got = measure.group({"torch": (_busy(100), lambda: None)}, CFG, sleep=slept.append, watch=starved)
    assert slept == [CFG.load.pause_s]
    assert got.fields["torch"]["load"]["verdict"] == "disturbed" and got.fields["torch"]["load"]["remeasured"] is True
