"""bench/regress: a deliberately slowed kernel is flagged, an unchanged one is not,
and the check compares two checkouts through a git worktree and worker processes."""

import json
import subprocess

import pytest

import backends
from bench.regress import check, sides, verdict, worktree
from bench.regress.worker import PairTimer

CASE = dict(B=2, T=256, D=64)
PAIRS = [{"op": "parallel_scan", "case": CASE, "mode": "forward", "name": "torch", "device": "cpu"}]


def _slowed(fn):
    """The same result, computed three times over: a 3x slower kernel."""
    def slow(*args, **kwargs):
        fn(*args, **kwargs)
        fn(*args, **kwargs)
        return fn(*args, **kwargs)
    return slow


class InProcessSide:
    """One side served in this process (``worker.PairTimer``), speaking the worker
    protocol; a slowed side swaps the registry's kernel for a slowed one during its turns."""

    def __init__(self, slow: bool):
        self.timer, self.slow = PairTimer(), slow
        self.turns = 0

    def ask(self, **msg):
        impl = backends.get("parallel_scan", "torch")
        original = impl.fn
        if msg["cmd"] == "time":
            self.turns += 1
            if self.slow:
                impl.fn = _slowed(original)
        try:
            return self.timer.handle(msg)
        finally:
            impl.fn = original


def _compared(slow_head: bool) -> tuple[list, dict]:
    workers = {"head": InProcessSide(slow_head), "base": InProcessSide(False)}
    # 9 calls a turn: a turn's median shrugs off four calls slowed by a burst of steal time
    got = sides.measure_pairs(dict(workers), PAIRS, rounds=4, reps=9)
    return verdict.compare_sides(got["base"], got["head"]), workers


def test_a_slowed_kernel_is_flagged():
    (row,), workers = _compared(slow_head=True)
    assert row.verdict == "slower" and row.fails, row
    assert row.ratio > verdict.FACTOR
    assert workers["head"].turns == workers["base"].turns == 5  # an untimed turn, then 4


def test_an_unchanged_kernel_is_not_flagged():
    (row,), _ = _compared(slow_head=False)
    assert not row.fails, row
    assert row.ratio < verdict.FACTOR


def test_a_slow_burst_in_one_round_is_not_a_regression():
    """Two of four head rounds hit by other load: pooled, the head looks 5x slower and
    significant; per round, the other rounds show no slowdown, so the pair is not failed."""
    base, head = {}, {}
    for r in range(4):
        verdict.pool(base, {"k": {"samples_ns": [1000 + i for i in range(15)]}})
        verdict.pool(head, {"k": {"samples_ns": [(9000 if r < 2 else 990) + i for i in range(15)]}})
    (row,) = verdict.compare_sides(base, head)
    assert row.verdict == "ambiguous" and not row.fails, row
    head = {}
    for r in range(4):
        verdict.pool(head, {"k": {"samples_ns": [2000 + i for i in range(15)]}})
    (row,) = verdict.compare_sides(base, head)
    assert row.verdict == "slower" and row.fails, row


def test_pairs_the_base_cannot_run_are_new_and_head_errors_fail():
    head = {"a": {"samples_ns": [1] * 10}, "b": {"error": "RuntimeError: boom"}}
    base = {"a": {"unavailable": "no such op"}}
    rows = {r.key: r for r in verdict.compare_sides(base, head)}
    assert rows["a"].verdict == "new" and not rows["a"].fails
    assert rows["b"].verdict == "error" and rows["b"].fails


def _git_checkout():
    try:
        subprocess.run(["git", "rev-parse", "HEAD"], cwd=worktree.REPO_ROOT, check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")


def test_a_worker_times_the_kernels_of_its_own_tree(tmp_path):
    """A worker started in a side's shim imports that tree's backends (here a worktree
    of HEAD) with this checkout's harness, runs with idle OpenMP threads sleeping, and
    answers prepare and time requests with raw samples."""
    _git_checkout()
    tree = tmp_path / "tree"
    worktree.git("worktree", "add", "--detach", str(tree), "HEAD")
    worker = None
    try:
        worker = sides.SideWorker(worktree.shim(tree, tmp_path / "side"), tmp_path / "side.log")
        assert worker.ask(cmd="prepare", pair=PAIRS[0]) == {"ok": True}
        got = worker.ask(cmd="time", reps=5)
        bad = worker.ask(cmd="prepare", pair=dict(PAIRS[0], op="no_such_op"))
    finally:
        if worker is not None:
            worker.close()
        worktree.git("worktree", "remove", "--force", str(tree))
    assert len(got["samples_ns"]) == 5 and min(got["samples_ns"]) > 0
    assert "no_such_op" in str(bad) and not bad.get("ok"), bad
    assert not worker.alive


class FakeWorker:
    """Records the turns; every call takes 1000 ns (``slow`` times that)."""

    def __init__(self, side, calls, slow=1, fail_prepare=None):
        self.side, self.calls, self.slow, self.fail_prepare = side, calls, slow, fail_prepare
        self.closed = False

    def ask(self, cmd, **msg):
        if cmd == "prepare":
            return {"unavailable": self.fail_prepare} if self.fail_prepare else {"ok": True}
        self.calls.append(self.side)
        return {"samples_ns": [1000 * self.slow + i for i in range(msg["reps"])]}

    def close(self):
        self.closed = True


def test_run_check_alternates_turns_confirms_and_cleans_up():
    """Turns alternate within each pair (head, base), (base, head), ...; a pair that
    looks slower is measured again by new workers before it fails; the workers are
    closed and the temporary worktree is removed."""
    _git_checkout()
    calls, made = [], []

    def start(side, side_dir, log_path, log):
        made.append(FakeWorker(side, calls, slow=3 if side == "head" else 1))
        return made[-1]

    (row,) = check.run_check(check.RegressConfig("HEAD", rounds=2, reps=5), PAIRS, log=lambda msg: None, worker=start)
    # an untimed turn each, then the timed rounds; measured, then measured again
    assert calls == (["base", "head"] + ["head", "base", "base", "head"]) * 2
    assert row.verdict == "slower" and row.fails and row.note.startswith("confirmed")
    assert len(made) == 4 and all(w.closed for w in made)  # new processes for the second measurement
    assert "arsenal-regression-" not in worktree.git("worktree", "list")


def test_a_base_that_cannot_run_makes_pairs_new():
    _git_checkout()
    calls = []
    for start in (lambda side, *a: FakeWorker(side, calls) if side == "head" else None,  # base did not start
                  lambda side, *a: FakeWorker(side, calls, fail_prepare="ImportError" if side == "base" else None)):
        (row,) = check.run_check(check.RegressConfig("HEAD", rounds=2, reps=5), PAIRS, log=lambda msg: None,
                                 worker=start)
        assert row.verdict == "new" and not row.fails, row


def test_a_slowdown_not_seen_again_is_not_a_failure():
    first = verdict.Row("k", "slower", 2.0, 1e-4, "round ratios 2 2")
    second = verdict.Row("k", "unchanged", 1.02, 0.6, "round ratios 1 1.04")
    row = verdict.confirm(first, second)
    assert row.verdict == "ambiguous" and not row.fails and "not confirmed" in row.note
    again = verdict.Row("k", "slower", 1.9, 1e-4, "round ratios 1.9 1.9")
    assert verdict.confirm(first, again).fails


def test_a_worker_that_dies_is_an_error_for_the_head_and_new_for_the_base():
    class Dying(FakeWorker):
        def ask(self, cmd, **msg):
            raise sides.WorkerDied("segfault")

    for dying, expected in (("head", "error"), ("base", "new")):
        workers = {s: Dying(s, []) if s == dying else FakeWorker(s, []) for s in sides.SIDES}
        dead = workers[dying]
        got = sides.measure_pairs(workers, PAIRS, rounds=2, reps=5)
        (row,) = verdict.compare_sides(got["base"], got["head"])
        assert row.verdict == expected and "died" in row.note and workers[dying] is None
        assert dead.closed  # its pipes and log are released
