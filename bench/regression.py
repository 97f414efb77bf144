"""Regression check for CI: this checkout's kernels against its parent commit's.

    python -m bench.regression [--base HEAD~1] [--factor 1.5] [--alpha 0.01] [--rounds 4]

Rule: a pair (op, case, mode, backend) FAILS when its median time (all rounds pooled)
is more than ``FACTOR`` = 1.5 times the base's, the Mann-Whitney U test on the pooled
raw samples gives p < ``ALPHA`` = 0.01, AND the slowdown shows in every round (each
round's head median above the base median of the same round). The last condition is
there because samples of one round are not independent: a burst of other load on a
shared machine slows a whole round of one side, which the pooled test alone would call
significant. A slowdown below 1.5x, or one the samples cannot tell from noise, does not
fail the build (it is printed). The factor is wide on purpose:
CI machines are shared and small (2 cores), and a kernel that loses a third of its speed
is caught by the benchmark reports, not by a gate that must never cry wolf.

Method (asv's ``continuous`` would rebuild and reinstall the project at both commits,
too slow and fragile for CI's budget, so the comparison uses the harness's own runner):
- the base commit is checked out into a temporary ``git worktree``;
- each side runs in its own worker process whose ``backends`` package comes from that
  side's tree while the harness (``bench``, ``suites``) is this checkout's, so both
  sides are measured by the same code and only the kernels differ;
- the workers alternate, A B B A A B ..., for ``--rounds`` rounds, so drift of the
  machine (other load, heat) falls on both sides alike; each round of a side times every
  pair ``--reps`` times (``bench.timing.time_interleaved``), and the samples of all
  rounds are pooled;
- a load average above the number of cores during the check is reported as a warning:
  on a 2-core machine shared with other work, torch's OpenMP kernels were seen running
  50-80x slower than alone, and then no comparison means anything;
- pairs: the "stable" suite x the backends available on this machine (peers excluded:
  they are not this project's code) x forward and forward_backward. A pair the base
  cannot run (new op, new backend) is reported as new and not compared.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from suites.op_shapes import DEFAULT_MODES, case_id, cases

FACTOR = 1.5  # fail past this slowdown (median head / median base) ...
ALPHA = 0.01  # ... when the Mann-Whitney test on the raw samples gives p below this
REPO_ROOT = Path(__file__).resolve().parent.parent
HARNESS_PACKAGES = ("bench", "suites")  # always this checkout's
KERNEL_PACKAGE = "backends"  # the side's own


def key(pair: dict) -> str:
    return f"{pair['op']}/{case_id(pair['case'])}/{pair['mode']}/{pair['name']}"


def plan(suite: str = "stable", names=None, modes=DEFAULT_MODES, ops=None, device: str = "cpu") -> list[dict]:
    """The pairs to compare: the suite's cases x modes x backends (not peers) available here."""
    import backends
    from bench.prepare import why_unavailable

    if names is None:
        names = [b for b in backends.BACKEND_NAMES if backends.BACKENDS[b].available]
    pairs = []
    for op in ops or backends.OPS:
        for case in cases(suite, op, device):
            for mode in modes:
                for name in names:
                    if why_unavailable(op, name, device, case=case, mode=mode) is None:
                        pairs.append({"op": op, "case": case, "mode": mode, "name": name, "device": device})
    return pairs


def measure(pairs: list[dict], reps: int = 15) -> dict[str, dict]:
    """Time each pair ``reps`` times in this process: {key: {"samples_ns": [...]}} or
    {key: {"unavailable": reason}} / {key: {"error": message}}."""
    import torch

    from bench import env
    from bench.prepare import Unavailable, prepare
    from bench.timing import Candidate, TimingConfig, time_interleaved

    env.fix_threads()
    cfg = TimingConfig(min_reps=reps, max_reps=reps, target_rel_iqr=0.0, budget_s=3600.0)
    out = {}
    for pair in pairs:
        k = key(pair)
        try:
            p = prepare(pair["op"], pair["name"], pair["case"], torch.float32, pair["device"], pair["mode"])
        except Unavailable as exc:
            out[k] = {"unavailable": str(exc)}
            continue
        except Exception as exc:  # the side's kernel is broken for this pair: report, go on
            out[k] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        try:
            m = time_interleaved([Candidate(pair["name"], p.fn, p.sync)], cfg)[pair["name"]]
            out[k] = {"samples_ns": m.samples_ns}
        except Exception as exc:
            out[k] = {"error": f"{type(exc).__name__}: {exc}"}
        del p
    return out


@dataclass(frozen=True)
class Row:
    key: str
    verdict: str  # "slower" (fails), "faster", "unchanged", "ambiguous", "new", "error"
    ratio: float | None = None  # median head / median base
    p: float | None = None
    note: str = ""

    @property
    def fails(self) -> bool:
        return self.verdict in ("slower", "error")


def compare_sides(base: dict[str, dict], head: dict[str, dict], factor: float = FACTOR,
                  alpha: float = ALPHA) -> list[Row]:
    """One row per pair of ``head``; see the module docstring for the rule."""
    from bench.compare import verdict

    rows = []
    for k, h in head.items():
        b = base.get(k, {"unavailable": "not measured on the base"})
        if "samples_ns" not in h:
            rows.append(Row(k, "error", note=h.get("error") or h.get("unavailable", "")))
        elif "samples_ns" not in b:
            rows.append(Row(k, "new", note=b.get("error") or b.get("unavailable", "")))
        else:
            v, ratio, p = verdict(b["samples_ns"], h["samples_ns"], alpha=alpha, threshold=factor - 1.0)
            per_round = round_ratios(b, h)
            note = "round ratios " + " ".join(f"{r:.2f}" for r in per_round)
            if v == "slower" and min(per_round, default=0.0) <= 1.0:
                v, note = "ambiguous", note + ": not slower in every round"
            rows.append(Row(k, v, ratio, p, note))
    return rows


def round_ratios(base: dict, head: dict) -> list[float]:
    """median(head round r) / median(base round r) for the rounds both sides have."""
    import numpy as np

    return [float(np.median(h) / np.median(b)) for b, h in zip(base.get("rounds", []), head.get("rounds", []))]


def pool(into: dict[str, dict], more: dict[str, dict]) -> None:
    """Add one round's results to the pooled ones: samples concatenate, and each
    round's samples are kept apart too (``rounds``)."""
    for k, r in more.items():
        have = into.setdefault(k, {})
        if "samples_ns" in r and "samples_ns" in have:
            have["samples_ns"] = have["samples_ns"] + r["samples_ns"]
            have["rounds"].append(r["samples_ns"])
        elif "samples_ns" not in have:
            into[k] = dict(r)
            if "samples_ns" in r:
                into[k]["rounds"] = [r["samples_ns"]]


# ---------------------------------------------------------------------------
# The two sides: worktree, import shim, worker processes.
# ---------------------------------------------------------------------------


def _git(*args, cwd=REPO_ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def shim(kernels_root: Path, where: Path) -> Path:
    """A directory whose ``backends`` is ``kernels_root``'s and whose harness packages are
    this checkout's (symlinks); a worker started there imports exactly that mix."""
    where.mkdir(parents=True, exist_ok=True)
    (where / KERNEL_PACKAGE).symlink_to(Path(kernels_root).resolve() / KERNEL_PACKAGE)
    for pkg in HARNESS_PACKAGES:
        (where / pkg).symlink_to(REPO_ROOT / pkg)
    return where


def run_worker(side_dir: Path, pairs_file: Path, result_file: Path, reps: int) -> dict:
    path = [str(side_dir)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
    cmd = [sys.executable, "-m", "bench.regression", "--worker", str(pairs_file), str(result_file), "--reps", str(reps)]
    done = subprocess.run(cmd, cwd=side_dir, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"worker in {side_dir} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    got = json.loads(result_file.read_text())
    want = (side_dir / KERNEL_PACKAGE).resolve()
    if Path(got["meta"]["backends"]).resolve().parent != want:
        raise RuntimeError(f"worker in {side_dir} imported backends from {got['meta']['backends']}, not {want}")
    return got["results"]


def run_check(base: str = "HEAD~1", factor: float = FACTOR, alpha: float = ALPHA, rounds: int = 4, reps: int = 15,
              pairs: list[dict] | None = None, log=print) -> list[Row]:
    """Compare this checkout with ``base`` (a git revision); returns the rows."""
    pairs = plan() if pairs is None else pairs
    base_sha = _git("rev-parse", "--verify", f"{base}^{{commit}}")
    with tempfile.TemporaryDirectory(prefix="arsenal-regression-") as tmp:
        tmp = Path(tmp)
        tree = tmp / "base"
        _git("worktree", "add", "--detach", str(tree), base_sha)
        try:
            sides = {"head": shim(REPO_ROOT, tmp / "head-side"), "base": shim(tree, tmp / "base-side")}
            pairs_file = tmp / "pairs.json"
            pairs_file.write_text(json.dumps(pairs))
            pooled = {"head": {}, "base": {}}
            busiest = 0.0
            for r in range(rounds):
                order = ("head", "base") if r % 2 == 0 else ("base", "head")
                for side in order:
                    log(f"round {r + 1}/{rounds}: {side} ({len(pairs)} pairs)")
                    try:
                        got = run_worker(sides[side], pairs_file, tmp / f"{side}-{r}.json", reps)
                    except RuntimeError as exc:
                        if side == "head":
                            raise
                        # a base that predates the harness (or cannot import it) has nothing to compare
                        got = {key(p): {"unavailable": f"base worker failed: {str(exc)[-300:]}"} for p in pairs}
                    pool(pooled[side], got)
                    busiest = max(busiest, os.getloadavg()[0])
        finally:
            _git("worktree", "remove", "--force", str(tree))
    cores = os.cpu_count() or 1
    if busiest > cores:
        log(f"WARNING: the load average reached {busiest:.1f} on {cores} cores during the check: other work "
            "competed for the cores, and OpenMP kernels slow down many times over under such contention; "
            "treat these verdicts with suspicion (CI runs on a quiet machine)")
    return compare_sides(pooled["base"], pooled["head"], factor, alpha)


def report(rows: list[Row], factor: float, alpha: float, base: str) -> str:
    lines = [f"regression check against {base}: fail when slower than {factor}x with p < {alpha} in every round",
             f"{'pair':60s} {'verdict':14s} {'ratio':>7s} {'p':>9s}  note"]
    for r in rows:
        ratio = f"{r.ratio:.3f}" if r.ratio is not None else "-"
        p = f"{r.p:.2g}" if r.p is not None else "-"
        lines.append(f"{r.key:60s} {r.verdict + (' FAIL' if r.fails else ''):14s} {ratio:>7s} {p:>9s}  {r.note[:90]}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.regression", description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default="HEAD~1", help="git revision to compare against (default HEAD~1)")
    ap.add_argument("--factor", type=float, default=FACTOR, help=f"fail past this slowdown (default {FACTOR})")
    ap.add_argument("--alpha", type=float, default=ALPHA, help=f"significance level (default {ALPHA})")
    ap.add_argument("--rounds", type=int, default=4, help="alternating rounds per side (default 4)")
    ap.add_argument("--reps", type=int, default=15, help="timed calls per pair per round (default 15)")
    ap.add_argument("--suite", default="stable", help="op suite (default stable)")
    ap.add_argument("--ops", default=None, help="comma list of ops (default all)")
    ap.add_argument("--names", default=None, help="comma list of backends (default every available one)")
    modes = ",".join(DEFAULT_MODES)
    ap.add_argument("--modes", default=modes, help=f"comma list of modes (default {modes})")
    ap.add_argument("--out", default=None, help="write the rows as JSON here")
    ap.add_argument("--worker", nargs=2, metavar=("PAIRS", "RESULT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        pairs_file, result_file = args.worker
        import backends

        results = measure(json.loads(Path(pairs_file).read_text()), args.reps)
        Path(result_file).write_text(json.dumps({"meta": {"backends": backends.__file__}, "results": results}))
        return 0
    try:
        _git("rev-parse", "--verify", f"{args.base}^{{commit}}")
    except subprocess.CalledProcessError:
        print(f"regression check: no revision {args.base} (first commit or shallow clone): nothing to compare")
        return 0
    pairs = plan(args.suite, names=args.names.split(",") if args.names else None, modes=args.modes.split(","),
                 ops=args.ops.split(",") if args.ops else None)
    rows = run_check(args.base, args.factor, args.alpha, args.rounds, args.reps, pairs,
                     log=lambda msg: print(msg, file=sys.stderr, flush=True))
    print(report(rows, args.factor, args.alpha, args.base))
    if args.out:
        Path(args.out).write_text(json.dumps([r.__dict__ for r in rows], indent=1))
    return 1 if any(r.fails for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
