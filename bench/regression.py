"""Regression check for CI: this checkout's kernels against its parent commit's.

    python -m bench.regression [--base HEAD~1] [--factor 1.5] [--alpha 0.01] [--rounds 6]

Rule: a pair (op, case, mode, backend) FAILS when
- its median time (all rounds pooled) is more than ``FACTOR`` = 1.5 times the base's,
- the Mann-Whitney U test on the pooled raw samples gives p < ``ALPHA`` = 0.01,
- the slowdown shows in every round (each round's head median above the base median of
  the same round): samples of one round are not independent, and a burst of other load
  that slows one side for a moment would otherwise look significant,
- and all of that holds again when the pair is measured a second time, by new worker
  processes (``confirm``): a pair fails only if two separate measurements say so.
A slowdown below 1.5x, or one the samples cannot tell from noise, does not fail the
build (it is printed). The factor is wide on purpose: CI machines are shared and small
(2 cores), and a kernel that loses a third of its speed is caught by the benchmark
reports, not by a gate that must never cry wolf.

Method (asv's ``continuous`` would rebuild and reinstall the project at both commits,
too slow and fragile for CI's budget, so the comparison uses the harness's own timing):
- the base commit is checked out into a temporary ``git worktree``; the head is this
  checkout as it is (uncommitted edits included; CI's checkout is clean);
- each side is served by one long-lived worker process whose ``backends`` package comes
  from that side's tree while the harness (``bench``, ``suites``) is this checkout's, so
  both sides are measured by the same code and only the kernels differ;
- pair by pair, both workers prepare the pair, take one untimed turn each, then take
  turns timing it, ``--reps`` calls a turn, head first in even rounds and base first in
  odd ones, for ``--rounds`` rounds: the two sides of a ratio are measured milliseconds apart, so drift of the
  machine (other load, heat) falls on both alike. A worker that is not timing waits on
  its pipe; each turn starts with the harness's settle sleep (``TimingConfig.settle_s``,
  longer than OpenMP's spin after a region, see bench/timing.py), so the other side's
  threads are asleep, then one untimed call;
- a load average above the number of cores during the check is reported as a warning:
  on a 2-core machine shared with other work no comparison means much;
- pairs: the "stable" suite x the backends available on this machine (peers excluded:
  they are not this project's code) x forward and forward_backward. A pair the base
  cannot run (new op, new backend, a base that predates the harness) is reported as new
  and not compared.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from suites.op_shapes import DEFAULT_MODES, case_id, cases

FACTOR = 1.5  # fail past this slowdown (median head / median base) ...
ALPHA = 0.01  # ... when the Mann-Whitney test on the raw samples gives p below this
ROUNDS = 6  # turns per side and pair (head first in even rounds, base first in odd ones)
REPS = 9  # timed calls per turn: its median shrugs off four calls slowed by a burst of steal time
REPO_ROOT = Path(__file__).resolve().parent.parent
HARNESS_PACKAGES = ("bench", "suites")  # always this checkout's
KERNEL_PACKAGE = "backends"  # the side's own
SIDES = ("head", "base")


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


# ---------------------------------------------------------------------------
# Verdicts
# ---------------------------------------------------------------------------


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
    """One row per pair of ``head``, from one measurement (see the module docstring)."""
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


def confirm(first: Row, second: Row) -> Row:
    """The verdict on a pair that failed once (``first``) and was measured again
    (``second``): it fails only if the second measurement fails too."""
    if second.fails:
        return replace(second, note=f"confirmed (first measurement {first.ratio:.2f}x); {second.note}")
    ratio = f"{second.ratio:.2f}x" if second.ratio is not None else second.verdict
    return replace(second, verdict="ambiguous",
                   note=f"{first.ratio:.2f}x slower at first, {ratio} on re-measure: not confirmed")


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
# One side's timing: prepare a pair, time it a turn at a time. The worker process
# serves it over a pipe; tests use it in-process.
# ---------------------------------------------------------------------------


class PairTimer:
    """Holds one prepared pair at a time (the previous one is released first)."""

    def __init__(self):
        from bench import env
        from bench.timing import TimingConfig

        self.threads = env.pin_process()
        self.settle_s = 0.0 if env.spin_free() else TimingConfig().settle_s
        self.prepared = None
        self.clock = None  # made on the first turn, for the device of the pair

    def handle(self, msg: dict) -> dict:
        """``{"cmd": "prepare", "pair": {...}}`` -> ``{"ok": True}``, ``{"unavailable": why}``
        or ``{"error": ...}``; ``{"cmd": "time", "reps": n}`` -> ``{"samples_ns": [...]}``."""
        try:
            if msg["cmd"] == "prepare":
                return self.prepare(msg["pair"])
            if msg["cmd"] == "time":
                return {"samples_ns": self.time(msg["reps"])}
            return {"error": f"unknown command {msg['cmd']!r}"}
        except Exception as exc:  # the side's kernel is broken for this pair: report, go on
            return {"error": f"{type(exc).__name__}: {exc}"}

    def prepare(self, pair: dict) -> dict:
        import torch

        from bench.prepare import Unavailable, prepare

        self.prepared = None
        try:
            self.prepared = prepare(pair["op"], pair["name"], pair["case"], torch.float32, pair["device"],
                                    pair["mode"])
        except Unavailable as exc:
            return {"unavailable": str(exc)}
        return {"ok": True}

    def time(self, reps: int) -> list[int]:
        from bench.timing import CpuClock, CudaClock

        time.sleep(self.settle_s)  # the other side's OpenMP workers stop spinning
        p = self.prepared
        if p is None:
            raise RuntimeError("no pair prepared")
        if self.clock is None:
            self.clock = CudaClock(p.device) if p.device.startswith("cuda") else CpuClock()
        p.fn()  # untimed: wakes the thread pool that slept while the other side ran
        p.sync()
        return self.clock.block(p.fn, p.sync, reps)[0]


def serve(inp, out) -> None:
    """The worker's loop: a hello line (where ``backends`` came from, thread counts), then
    one JSON reply line per JSON request line until ``{"cmd": "quit"}`` or end of input."""
    import backends

    timer = PairTimer()
    out.write(json.dumps({"backends": backends.__file__, "threads": timer.threads}) + "\n")
    out.flush()
    for line in inp:
        msg = json.loads(line)
        if msg["cmd"] == "quit":
            break
        out.write(json.dumps(timer.handle(msg)) + "\n")
        out.flush()


class WorkerDied(RuntimeError):
    pass


class SideWorker:
    """A worker process serving one side (see ``serve``); ``ask`` sends a request and
    returns the reply. Its stderr goes to ``log_path``."""

    def __init__(self, side_dir: Path, log_path: Path):
        self.side_dir, self.log_path = Path(side_dir), Path(log_path)
        path = [str(self.side_dir)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
        environ = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.regression", "--serve"], cwd=self.side_dir,
                                     env=environ, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                                     text=True, bufsize=1)
        self.hello = self._read()
        want = (self.side_dir / KERNEL_PACKAGE).resolve()
        if Path(self.hello["backends"]).resolve().parent != want:
            self.close()
            raise WorkerDied(f"worker in {self.side_dir} imported backends from {self.hello['backends']}, not {want}")

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            self._log.flush()
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise WorkerDied(f"worker in {self.side_dir} exited ({self.proc.returncode}):\n{tail}")
        return json.loads(line)

    def ask(self, **msg) -> dict:
        try:
            self.proc.stdin.write(json.dumps(msg) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the read below reports how it died
        return self._read()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        if self.alive:
            try:
                self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self._log):
            try:
                stream.close()
            except OSError:  # a pipe to a process that died mid-write
                pass


def measure_pairs(workers: dict, pairs: list[dict], rounds: int = ROUNDS, reps: int = REPS,
                  progress=lambda done, total: None) -> dict[str, dict]:
    """Both sides, pair by pair, alternating turns; returns {side: {key: pooled result}}.

    ``workers`` maps "head" and "base" to objects with ``ask(**request) -> reply`` (a
    ``SideWorker``, or anything speaking the same protocol); a side whose worker is None
    or raises ``WorkerDied`` gets ``{"unavailable": why}`` / ``{"error": why}`` for the pair.
    """
    pooled = {side: {} for side in SIDES}
    for i, pair in enumerate(pairs):
        k = key(pair)
        ready = []
        for side in SIDES:
            reply = _ask(workers, side, cmd="prepare", pair=pair)
            if reply.get("ok"):
                ready.append(side)
            else:
                pooled[side][k] = reply
        for r in range(-1, rounds):  # round -1: one untimed turn each (first-touch, caches)
            for side in (SIDES if r % 2 == 0 else SIDES[::-1]):
                if side not in ready:
                    continue
                reply = _ask(workers, side, cmd="time", reps=reps)
                if "samples_ns" not in reply:
                    pooled[side][k] = reply
                    ready.remove(side)
                elif r >= 0:
                    pool(pooled[side], {k: reply})
        progress(i + 1, len(pairs))
    return pooled


def _ask(workers: dict, side: str, **msg) -> dict:
    w = workers.get(side)
    if w is None:
        return {"unavailable": f"no {side} worker"}
    try:
        return w.ask(**msg)
    except WorkerDied as exc:
        w.close()  # its pipes and log; the process is gone
        workers[side] = None
        return {"error": f"{side} worker died: {str(exc)[-600:]}"}


# ---------------------------------------------------------------------------
# The two sides' trees: worktree, import shim.
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


def start_worker(side: str, side_dir: Path, log_path: Path, log=print):
    """A SideWorker, or None for a base whose worker cannot start (a base that predates
    the harness has nothing to compare); a head that cannot start is an error."""
    try:
        return SideWorker(side_dir, log_path)
    except WorkerDied as exc:
        if side == "head":
            raise
        log(f"base worker did not start, every pair is new: {str(exc)[-300:]}")
        return None


def run_check(base: str = "HEAD~1", factor: float = FACTOR, alpha: float = ALPHA, rounds: int = ROUNDS,
              reps: int = REPS, pairs: list[dict] | None = None, log=print, worker=start_worker) -> list[Row]:
    """Compare this checkout with ``base`` (a git revision); returns the rows.
    ``worker(side, side_dir, log_path, log)`` starts a side's worker (tests pass a fake)."""
    pairs = plan() if pairs is None else pairs
    base_sha = _git("rev-parse", "--verify", f"{base}^{{commit}}")
    busiest = 0.0

    def progress(done, total):
        nonlocal busiest
        busiest = max(busiest, os.getloadavg()[0])
        if done == total or done % 4 == 0:
            log(f"  {done}/{total} pairs")

    with tempfile.TemporaryDirectory(prefix="arsenal-regression-") as tmp:
        tmp = Path(tmp)
        tree = tmp / "base"
        _git("worktree", "add", "--detach", str(tree), base_sha)
        dirs = {"head": shim(REPO_ROOT, tmp / "head-side"), "base": shim(tree, tmp / "base-side")}

        def measure(todo: list[dict], attempt: int) -> list[Row]:
            # fresh worker processes for every measurement: a process can keep a state of
            # its own (memory layout, where the scheduler put its threads) that makes it
            # slower throughout, 1.2x and more on the development machine; a second pair
            # of processes does not inherit it
            workers = {}
            try:
                for side in SIDES:
                    workers[side] = worker(side, dirs[side], tmp / f"{side}-{attempt}.log", log)
                got = measure_pairs(workers, todo, rounds, reps, progress)
            finally:
                for w in workers.values():
                    if w is not None:
                        w.close()
            return compare_sides(got["base"], got["head"], factor, alpha)

        try:
            log(f"measuring {len(pairs)} pairs, {rounds} alternating turns of {reps} calls per side")
            rows = measure(pairs, 1)
            suspects = [p for p, row in zip(pairs, rows) if row.verdict == "slower"]
            if suspects:
                log(f"measuring again, in new processes, the {len(suspects)} pairs that looked slower")
                second = {r.key: r for r in measure(suspects, 2)}
                rows = [confirm(r, second[r.key]) if r.key in second else r for r in rows]
        finally:
            _git("worktree", "remove", "--force", str(tree))
    cores = os.cpu_count() or 1
    if busiest > cores:
        log(f"WARNING: the load average reached {busiest:.1f} on {cores} cores during the check: other work "
            "competed for the cores; treat these verdicts with suspicion (CI runs on a quiet machine)")
    return rows


def report(rows: list[Row], factor: float, alpha: float, base: str) -> str:
    lines = [f"regression check against {base}: fail when slower than {factor}x with p < {alpha} in every round, "
             "twice",
             f"{'pair':60s} {'verdict':14s} {'ratio':>7s} {'p':>9s}  note"]
    for r in rows:
        ratio = f"{r.ratio:.3f}" if r.ratio is not None else "-"
        p = f"{r.p:.2g}" if r.p is not None else "-"
        lines.append(f"{r.key:60s} {r.verdict + (' FAIL' if r.fails else ''):14s} {ratio:>7s} {p:>9s}  {r.note[:100]}")
    failed = sum(r.fails for r in rows)
    lines.append(f"{failed} of {len(rows)} pairs failed" if failed else f"no regression in {len(rows)} pairs")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.regression", description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default="HEAD~1", help="git revision to compare against (default HEAD~1)")
    ap.add_argument("--factor", type=float, default=FACTOR, help=f"fail past this slowdown (default {FACTOR})")
    ap.add_argument("--alpha", type=float, default=ALPHA, help=f"significance level (default {ALPHA})")
    ap.add_argument("--rounds", type=int, default=ROUNDS, help=f"alternating turns per side and pair (default {ROUNDS})")
    ap.add_argument("--reps", type=int, default=REPS, help=f"timed calls per turn (default {REPS})")
    ap.add_argument("--suite", default="stable", help="op suite (default stable)")
    ap.add_argument("--ops", default=None, help="comma list of ops (default all)")
    ap.add_argument("--names", default=None, help="comma list of backends (default every available one)")
    modes = ",".join(DEFAULT_MODES)
    ap.add_argument("--modes", default=modes, help=f"comma list of modes (default {modes})")
    ap.add_argument("--out", default=None, help="write the rows as JSON here")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        # the protocol owns stdout; anything a kernel prints goes to stderr (the log)
        protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w")
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
        serve(sys.stdin, protocol)
        return 0
    if args.rounds < 2 or args.reps < 1:
        ap.error(f"--rounds must be >= 2 and --reps >= 1, got {args.rounds} and {args.reps}")
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
