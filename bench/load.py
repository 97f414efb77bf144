"""Contention: whether a timed block had the CPU it needed, from what this process got.

Steal time (``bench.env.steal_fraction``) sees only the hypervisor. Other processes on
the same machine slow a CPU kernel just as much and leave steal at zero: with two busy
loops holding both cores of the development machine, torch gated_update forward took
7.6 ms (IQR 490%) instead of 2.7-4.3 ms, and in a ``make run`` beside other work torch
gated_update came out at 354 ms and numba_cpu at 8 ms, 10-100x off (an OpenMP team
whose threads are descheduled in turn waits at every barrier for the one that is not
running). So, around every timed block, ``read()`` takes:

- the wall clock, this process's CPU time (all threads, ``time.process_time_ns``) and the
  timing thread's own (``time.thread_time_ns``);
- the run queue: tasks runnable on the machine (``/proc/loadavg``'s running count) less
  this process's own running threads (``/proc/self/task/*/stat``), i.e. the OTHER work
  that wants a core at that moment.

``assess`` turns a candidate's blocks into the record's ``load`` dict:

    cpu_share     this process's CPU time / (wall time x threads): 1 when every thread
                  had a core throughout (lower also when a kernel runs fewer threads)
    thread_share  the timing thread's CPU time / wall time: it calls the kernel and
                  waits at its barriers spinning, so on a CPU it is ~1 unless preempted
    runnable      other runnable tasks, mean over the readings (None off Linux)
    cores, threads
    verdict       "disturbed" when the other runnable tasks exceed the cores this
                  process leaves free by more than ``max_others`` on average, or (CPU
                  only: a GPU sync may sleep) both the timing thread and the process
                  got less than ``min_share`` of what they could have had (the thread
                  alone is not enough: a runtime whose caller sleeps while its workers
                  compute, such as Numba's workqueue layer, leaves it low on a quiet
                  machine); "quiet" otherwise

The runner re-measures a group with a disturbed candidate once, after ``pause_s``, and
what stays disturbed is flagged in the summary and weakens ``arsenal compare``.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

QUIET, DISTURBED = "quiet", "disturbed"


@dataclass(frozen=True)
class LoadConfig:
    max_others: float = 0.5  # mean runnable tasks of others beyond the free cores
    min_share: float = 0.8  # thread_share and cpu_share both below this: starved of CPU
    pause_s: float = 2.0  # sleep before the one re-measurement of a disturbed group


@dataclass(frozen=True)
class Reading:
    wall_ns: int
    process_cpu_ns: int  # every thread of this process
    thread_cpu_ns: int  # the calling (timing) thread
    others: int | None  # runnable tasks that are not this process's threads; None off Linux


def run_queue() -> int | None:
    """Tasks runnable on the machine now (the reader included); None off Linux."""
    try:
        return int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
    except (OSError, IndexError, ValueError):
        return None


def own_running() -> int | None:
    """This process's threads in state R (running or runnable) now; None off Linux."""
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return None
    running = 0
    for tid in tasks:
        try:
            stat = Path(f"/proc/self/task/{tid}/stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        running += stat[stat.rindex(")") + 2] == "R"  # the state follows "(comm) "
    return running


def read() -> Reading:
    wall, cpu, thread = time.perf_counter_ns(), time.process_time_ns(), time.thread_time_ns()
    queue, own = run_queue(), own_running()
    others = None if queue is None or own is None else max(0, queue - own)
    return Reading(wall, cpu, thread, others)


def assess(blocks: Sequence[tuple[Reading, Reading]], threads: int, cores: int | None = None, cpu: bool = True,
           cfg: LoadConfig = LoadConfig()) -> dict | None:
    """The ``load`` dict of a candidate from its blocks' (before, after) readings; None
    when there are none (the candidate was not timed)."""
    if not blocks:
        return None
    cores = cores or os.cpu_count() or 1
    threads = max(1, threads)
    wall = sum(b.wall_ns - a.wall_ns for a, b in blocks) or 1
    proc = sum(b.process_cpu_ns - a.process_cpu_ns for a, b in blocks)
    thread = sum(b.thread_cpu_ns - a.thread_cpu_ns for a, b in blocks)
    seen = [r.others for pair in blocks for r in pair if r.others is not None]
    runnable = sum(seen) / len(seen) if seen else None
    crowded = runnable is not None and runnable - max(0, cores - threads) > cfg.max_others
    cpu_share, thread_share = proc / (wall * threads), thread / wall
    starved = cpu and thread_share < cfg.min_share and cpu_share < cfg.min_share
    return {"cpu_share": round(cpu_share, 3), "thread_share": round(thread_share, 3),
            "runnable": None if runnable is None else round(runnable, 2), "cores": cores, "threads": threads,
            "verdict": DISTURBED if crowded or starved else QUIET}


def disturbed(load: dict | None) -> bool:
    return bool(load) and load.get("verdict") == DISTURBED


@contextlib.contextmanager
def watched(device: str = "cpu"):
    """``with watched(device) as seen: ...``: afterwards ``seen`` is the ``load`` dict of
    the block (for timers that are not ours: pytest-benchmark's extra_info)."""
    import torch

    seen: dict = {}
    before = read()
    yield seen
    cpu = torch.device(device).type != "cuda"
    seen.update(assess([(before, read())], torch.get_num_threads(), cpu=cpu) or {})
