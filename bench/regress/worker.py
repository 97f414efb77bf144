"""One side's worker: ``python -m bench.regress.worker [--threads N]``, started by
``sides.SideWorker`` in a side's directory (worktree.shim), so ``backends`` is the
side's and the harness is this checkout's.

Protocol, JSON lines: a hello line (where ``backends`` came from, the thread counts),
then one reply per request until ``{"cmd": "quit"}`` or the end of input:

    {"cmd": "prepare", "pair": {"op", "case", "mode", "name", "device", "dtype"?}}
        -> {"ok": true} | {"unavailable": why} | {"error": why}
    {"cmd": "time", "reps": n}  -> {"samples_ns": [...]} | {"error": why}

A kernel of the side that is broken for a pair (or a base whose ``backends`` predates
what the harness needs) is an error reply, not a dead worker. ``dtype`` is a name
(default float32); the pair's other fields are those of ``bench.ops.plan.Item``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


class PairTimer:
    """Holds one prepared pair at a time (the previous one is released first)."""

    def __init__(self, threads: int | None = None):
        from bench import env
        from bench.timing import TimingConfig

        self.threads = env.pin_process(threads)
        self.settle_s = 0.0 if env.spin_free() else TimingConfig().settle_s
        self.prepared = None
        self.clock = None  # made on the first turn, for the device of the pair

    def handle(self, msg: dict) -> dict:
        try:
            if msg["cmd"] == "prepare":
                return self.prepare(msg["pair"])
            if msg["cmd"] == "time":
                return {"samples_ns": self.time(msg["reps"])}
            return {"error": f"unknown command {msg['cmd']!r}"}
        except Exception as exc:  # the side's kernel is broken for this pair: report, go on
            return {"error": f"{type(exc).__name__}: {exc}"}

    def prepare(self, pair: dict) -> dict:
        from bench.ops.dtypes import to_torch
        from bench.ops.prepare import Unavailable, prepare

        self.prepared = None
        try:
            self.prepared = prepare(pair["op"], pair["name"], pair["case"], to_torch(pair.get("dtype", "float32")),
                                    pair["device"], pair["mode"])
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


def serve(inp, out, threads: int | None = None) -> None:
    """The worker's loop (see the module docstring)."""
    import backends

    timer = PairTimer(threads)
    out.write(json.dumps({"backends": backends.__file__, "threads": timer.threads}) + "\n")
    out.flush()
    for line in inp:
        msg = json.loads(line)
        if msg["cmd"] == "quit":
            break
        out.write(json.dumps(timer.handle(msg)) + "\n")
        out.flush()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.regress.worker", description="a regression-check side worker")
    ap.add_argument("--threads", type=int)
    args = ap.parse_args(argv)
    # the protocol owns stdout; anything a kernel prints goes to stderr (the log)
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(sys.stdin, protocol, args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
