"""The client side of the workers (worker.py) and the turn-taking between head and base."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.regress.verdict import key, pool
from bench.regress.worktree import KERNEL_PACKAGE

ROUNDS = 6  # turns per side and pair (head first in even rounds, base first in odd ones)
REPS = 9  # timed calls per turn: its median shrugs off four calls slowed by a burst of steal time
SIDES = ("head", "base")


class WorkerDied(RuntimeError):
    pass


class SideWorker:
    """A worker process serving one side; ``ask`` sends a request and returns the reply.
    Its stderr goes to ``log_path``."""

    def __init__(self, side_dir: Path, log_path: Path, threads: int | None = None):
        self.side_dir, self.log_path = Path(side_dir), Path(log_path)
        path = [str(self.side_dir)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
        environ = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
        command = [sys.executable, "-m", "bench.regress.worker"] + (["--threads", str(threads)] if threads else [])
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(command, cwd=self.side_dir, env=environ, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._log, text=True, bufsize=1)
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


def start_worker(side: str, side_dir: Path, log_path: Path, log=print, threads: int | None = None):
    """A SideWorker, or None for a base whose worker cannot start (a base that predates
    the harness has nothing to compare); a head that cannot start is an error."""
    try:
        return SideWorker(side_dir, log_path, threads)
    except WorkerDied as exc:
        if side == "head":
            raise
        log(f"base worker did not start, every pair is new: {str(exc)[-300:]}")
        return None


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
