"""The regression check end to end: plan the pairs, measure both sides in fresh workers,
measure the suspects again in new ones, and return the rows (bench/regress/__init__.py)."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from bench.regress import sides, worktree
from bench.regress.verdict import ALPHA, FACTOR, Row, compare_sides, confirm


@dataclass(frozen=True)
class RegressConfig:
    base: str = "HEAD~1"  # the git revision to compare against
    factor: float = FACTOR
    alpha: float = ALPHA
    rounds: int = sides.ROUNDS
    reps: int = sides.REPS
    threads: int | None = None  # the workers' torch and Numba threads (default: every core)


def pairs(sel) -> list[dict]:
    """The pairs a ``plan.Selection`` gives that can run here, in the workers' wire format."""
    from bench.ops import plan
    from bench.ops.dtypes import name as dtype_name

    return [{"op": i.op, "case": i.case, "mode": i.mode, "name": i.name, "device": i.device,
             "dtype": dtype_name(i.dtype)} for i in plan.items(sel) if i.reason is None]


def default_selection(device: str = "cpu"):
    """The stable suite x every backend (no peers) x forward and forward_backward."""
    from bench.ops.plan import Selection
    from suites.op_shapes import DEFAULT_MODES

    return Selection(suite="stable", modes=DEFAULT_MODES, device=device)


def run_check(cfg: RegressConfig = RegressConfig(), todo: list[dict] | None = None, log=print,
              worker=None) -> list[Row]:
    """Compare this checkout with ``cfg.base``; returns the rows. ``worker(side, side_dir,
    log_path, log)`` starts a side's worker (default ``sides.start_worker`` with
    ``cfg.threads``; tests pass a fake)."""
    todo = pairs(default_selection()) if todo is None else todo
    worker = worker or functools.partial(sides.start_worker, threads=cfg.threads)
    base_sha = worktree.resolve(cfg.base)
    if base_sha is None:
        raise ValueError(f"no revision {cfg.base}")
    busiest = 0.0

    def progress(done, total):
        nonlocal busiest
        busiest = max(busiest, os.getloadavg()[0])
        if done == total or done % 4 == 0:
            log(f"  {done}/{total} pairs")

    with worktree.sides(base_sha) as (tmp, dirs):

        def measure(some: list[dict], attempt: int) -> list[Row]:
            # fresh worker processes for every measurement: a process can keep a state of
            # its own (memory layout, where the scheduler put its threads) that makes it
            # slower throughout, 1.2x and more on the development machine; a second pair
            # of processes does not inherit it
            workers = {}
            try:
                for side in sides.SIDES:
                    workers[side] = worker(side, dirs[side], tmp / f"{side}-{attempt}.log", log)
                got = sides.measure_pairs(workers, some, cfg.rounds, cfg.reps, progress)
            finally:
                for w in workers.values():
                    if w is not None:
                        w.close()
            return compare_sides(got["base"], got["head"], cfg.factor, cfg.alpha)

        log(f"measuring {len(todo)} pairs, {cfg.rounds} alternating turns of {cfg.reps} calls per side")
        rows = measure(todo, 1)
        suspects = [p for p, row in zip(todo, rows) if row.verdict == "slower"]
        if suspects:
            log(f"measuring again, in new processes, the {len(suspects)} pairs that looked slower")
            second = {r.key: r for r in measure(suspects, 2)}
            rows = [confirm(r, second[r.key]) if r.key in second else r for r in rows]
    cores = os.cpu_count() or 1
    if busiest > cores:
        log(f"WARNING: the load average reached {busiest:.1f} on {cores} cores during the check: other work "
            "competed for the cores; treat these verdicts with suspicion (CI runs on a quiet machine)")
    return rows

