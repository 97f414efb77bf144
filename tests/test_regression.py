"""bench.regression: a deliberately slowed kernel is flagged, an unchanged one is not,
and the CLI compares two checkouts through a git worktree and worker processes."""

import json
import subprocess

import pytest

import backends
from bench import regression

CASE = dict(B=2, T=256, D=64)
PAIRS = [{"op": "parallel_scan", "case": CASE, "mode": "forward", "name": "torch", "device": "cpu"}]


def _slowed(fn):
    """The same result, computed three times over: a 3x slower kernel."""
    def slow(*args, **kwargs):
        fn(*args, **kwargs)
        fn(*args, **kwargs)
        return fn(*args, **kwargs)
    return slow


def _alternating(monkeypatch, slow_head: bool, rounds: int = 2) -> list:
    """Base and head measured in this process, alternating as the CLI's workers do; the
    head's registry entry is swapped for a slowed one when asked."""
    impl = backends.get("parallel_scan", "torch")
    original = impl.fn
    pooled = {"base": {}, "head": {}}
    for r in range(rounds):
        for side in (("base", "head") if r % 2 == 0 else ("head", "base")):
            monkeypatch.setattr(impl, "fn", _slowed(original) if side == "head" and slow_head else original)
            regression.pool(pooled[side], regression.measure(PAIRS, reps=10))
    monkeypatch.setattr(impl, "fn", original)
    return regression.compare_sides(pooled["base"], pooled["head"])


def test_a_slowed_kernel_is_flagged(monkeypatch):
    (row,) = _alternating(monkeypatch, slow_head=True)
    assert row.verdict == "slower" and row.fails, row
    assert row.ratio > regression.FACTOR


def test_an_unchanged_kernel_is_not_flagged(monkeypatch):
    (row,) = _alternating(monkeypatch, slow_head=False)
    assert not row.fails, row
    assert row.ratio < regression.FACTOR


def test_a_slow_burst_in_one_round_is_not_a_regression():
    """Two of four head rounds hit by other load: pooled, the head looks 5x slower and
    significant; per round, the other rounds show no slowdown, so the pair is not failed."""
    base, head = {}, {}
    for r in range(4):
        regression.pool(base, {"k": {"samples_ns": [1000 + i for i in range(15)]}})
        regression.pool(head, {"k": {"samples_ns": [(9000 if r < 2 else 990) + i for i in range(15)]}})
    (row,) = regression.compare_sides(base, head)
    assert row.verdict == "ambiguous" and not row.fails, row
    head = {}
    for r in range(4):
        regression.pool(head, {"k": {"samples_ns": [2000 + i for i in range(15)]}})
    (row,) = regression.compare_sides(base, head)
    assert row.verdict == "slower" and row.fails, row


def test_pairs_the_base_cannot_run_are_new_and_head_errors_fail():
    head = {"a": {"samples_ns": [1] * 10}, "b": {"error": "RuntimeError: boom"}}
    base = {"a": {"unavailable": "no such op"}}
    rows = {r.key: r for r in regression.compare_sides(base, head)}
    assert rows["a"].verdict == "new" and not rows["a"].fails
    assert rows["b"].verdict == "error" and rows["b"].fails


def _git_checkout():
    try:
        subprocess.run(["git", "rev-parse", "HEAD"], cwd=regression.REPO_ROOT, check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")


def test_a_worker_times_the_kernels_of_its_own_tree(tmp_path):
    """A worker started in a side's shim imports that tree's backends (here a worktree
    of HEAD) with this checkout's harness, and returns raw samples."""
    _git_checkout()
    tree = tmp_path / "tree"
    regression._git("worktree", "add", "--detach", str(tree), "HEAD")
    try:
        side = regression.shim(tree, tmp_path / "side")
        pairs_file = tmp_path / "pairs.json"
        pairs_file.write_text(json.dumps(PAIRS))
        got = regression.run_worker(side, pairs_file, tmp_path / "result.json", reps=5)
    finally:
        regression._git("worktree", "remove", "--force", str(tree))
    (result,) = got.values()
    assert len(result["samples_ns"]) == 5 and min(result["samples_ns"]) > 0


def test_run_check_alternates_the_sides_and_cleans_up(monkeypatch):
    """Rounds alternate (head, base), (base, head); samples pool across rounds; a base
    that cannot be measured makes every pair "new" rather than a failure; the
    temporary worktree is removed."""
    _git_checkout()
    calls = []

    def fake_worker(side_dir, pairs_file, result_file, reps):
        side = side_dir.name.split("-")[0]
        calls.append(side)
        if side == "base" and len(calls) > 2:
            raise RuntimeError("ImportError: the base predates the harness")
        return {regression.key(p): {"samples_ns": [1000] * reps} for p in PAIRS}

    monkeypatch.setattr(regression, "run_worker", fake_worker)
    rows = regression.run_check("HEAD", rounds=2, reps=5, pairs=PAIRS, log=lambda msg: None)
    assert calls == ["head", "base", "base", "head"]
    (row,) = rows
    assert row.verdict == "unchanged" and not row.fails  # base round 1 pooled, round 2 failed
    listed = regression._git("worktree", "list")
    assert "arsenal-regression-" not in listed

    calls.append("base")  # from now on every base worker fails
    (row,) = regression.run_check("HEAD", rounds=1, reps=5, pairs=PAIRS, log=lambda msg: None)
    assert row.verdict == "new" and not row.fails and "predates" in row.note
