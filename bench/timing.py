"""Timing of prepared zero-argument closures, several candidates interleaved in one run.

A *group* is the candidates (backends and peers) of one op, case, dtype and mode. They
are timed in rounds: each round runs one block of repetitions of every candidate, so
every ratio between them comes from the same minutes of the same run (A B A B ...), and
the order is reversed every other round (A B, B A, ...) so that what one candidate
leaves behind weighs on every candidate alike.

The OpenMP spin problem. torch ships its own libgomp and Numba's ``omp`` threading layer
loads the system's: two OpenMP pools, each with a thread per core. After a parallel
region a pool's workers keep spinning (milliseconds of CPU after one torch op on the
2-core development machine, seen as CPU time the process burns while its main thread
sleeps; longer in wall time when the machine is shared), so a kernel of the other pool
started meanwhile shares its cores with spinning threads. When the two pools alternate
quickly both spin all the time and every call slows down tens of times, as with
OMP_WAIT_POLICY=ACTIVE. Hence, in layers:
- the runtimes keep their default wait policy. OMP_WAIT_POLICY=PASSIVE (idle workers
  sleep at once) would remove the spinning, but then every parallel region pays a
  wake-up of the sleeping workers: measured on the 2-core development machine,
  numba_cpu logspace_matvec B4-M256-K256 forward took 373 us instead of 136 us, torch
  stack_step B64-K32-D128 2.55 ms instead of 0.62 ms. That is not how the kernels run
  for a user, so the harness does not set it (a user who exports it is obeyed, and
  every record stores the OpenMP variables that were set);
- ``settle_s``: a sleep of 20 ms before each block, longer than a spin (libgomp's
  default 300000 spins: 4-8 ms of CPU over the two workers after one op there), so no
  block starts while the other pool's workers still spin. Skipped when the workers
  cannot spin (``bench.env.spin_free``: PASSIVE or GOMP_SPINCOUNT=0);
- each block of a fast candidate starts with one untimed call (``wake_below_s``) that
  wakes its pool, so no timed sample pays the wake-up. Fast by the median of its samples
  so far, once it has some: the warm-up's estimate alone took a 14 us numba_cpu call for
  a 1 s one when its first call loaded the kernel from Numba's cache, and every sample
  of it then paid a wake-up (about 6 ms each in ``arsenal overhead``);
- the order alternates, as above, so what is left weighs on every candidate alike.

CPU samples are ``perf_counter_ns`` around the call and the backend's synchronize. GPU
samples are CUDA events around the call, with the L2 cache flushed before each
repetition (a buffer twice the device's L2, zeroed), and the host time of the call
(launch overhead, no synchronize) kept apart. The clocks take their event factory,
flush buffer and synchronize as arguments, so the GPU bookkeeping is tested on the CPU.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from bench import env

MIB = 1 << 20


@dataclass(frozen=True)
class TimingConfig:
    warmup_s: float = 0.05  # untimed calls per candidate before the first round (at least one)
    min_reps: int = 7  # fewest timed samples per candidate before a precision stop
    min_rounds: int = 3  # fewest rounds before a precision stop (A B, B A, A B)
    max_reps: int = 300  # most timed samples per candidate
    target_rel_iqr: float = 0.05  # stop once IQR / median <= this for every candidate
    budget_s: float = 3.0  # wall-clock limit of the rounds of one group (warm-up excluded)
    block_s: float = 0.02  # aim of one block's duration: fast closures repeat within a block
    # (at most max_reps / 10 repetitions, so that the samples come from ten rounds or more)
    settle_s: float = 0.02  # sleep before each block, longer than OpenMP's spin after a region
    wake_below_s: float = 0.05  # closures faster than this get one untimed call per block
    alternate: bool = True  # reverse the candidate order every other round


@dataclass(frozen=True)
class Candidate:
    name: str
    fn: Callable[[], object]  # runs exactly the timed work
    sync: Callable[[], None] = lambda: None  # waits for the work fn queued (CUDA)


@dataclass
class Measurement:
    samples_ns: list[int] = field(default_factory=list)  # one per timed repetition
    host_ns: list[int] | None = None  # GPU: host time of each call (launch overhead)
    rounds: int = 0
    stop_reason: str = ""  # "precision", "budget" or "max_reps"
    readings: list = field(default_factory=list)  # (before, after) of each block from ``watch`` (bench.load)

    @property
    def stats(self) -> dict:
        return summarize(self.samples_ns)


def summarize(samples: Sequence[float]) -> dict:
    """Median and interquartile range (numpy's linear percentiles) of raw samples."""
    if len(samples) == 0:
        return {"median": None, "q1": None, "q3": None, "iqr": None, "rel_iqr": None, "min": None, "n": 0}
    q1, med, q3 = np.percentile(np.asarray(samples, dtype=np.float64), [25, 50, 75])
    return {"median": float(med), "q1": float(q1), "q3": float(q3), "iqr": float(q3 - q1),
            "rel_iqr": float((q3 - q1) / med) if med > 0 else math.inf, "min": float(min(samples)),
            "n": len(samples)}


def ratio_interval(num: Sequence[float], den: Sequence[float], level: float = 0.95, resamples: int = 1000,
                   seed: int = 0) -> tuple[float, float]:
    """Bootstrap interval of median(num) / median(den): the noise of a speedup."""
    rng = np.random.default_rng(seed)
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    a = np.median(rng.choice(num, (resamples, len(num))), axis=1)
    b = np.median(rng.choice(den, (resamples, len(den))), axis=1)
    lo, hi = np.percentile(a / b, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


# ---------------------------------------------------------------------------
# Clocks: how one block of repetitions is timed.
# ---------------------------------------------------------------------------


class CpuClock:
    """Wall time of each call plus the backend's synchronize."""

    def __init__(self, now: Callable[[], int] = time.perf_counter_ns):
        self.now = now

    def block(self, fn, sync, reps: int) -> tuple[list[int], list[int] | None]:
        out = []
        for _ in range(reps):
            t0 = self.now()
            fn()
            sync()
            out.append(self.now() - t0)
        return out, None


def l2_cache_bytes(device) -> int:
    """The device's L2 size as the driver reports it (0 when unknown)."""
    import torch

    props = torch.cuda.get_device_properties(torch.device(device))
    return int(getattr(props, "L2_cache_size", 0) or 0)


def flush_bytes(l2_bytes: int, floor: int = 64 * MIB) -> int:
    """Size of the buffer zeroed between GPU repetitions: twice the L2, whole MiB, at
    least ``floor`` (for drivers that report no L2), so nothing of the previous
    repetition's data survives in the cache."""
    return max(floor, -(-2 * int(l2_bytes) // MIB) * MIB)


class CudaClock:
    """CUDA events around each call, the L2 flushed before it, host time kept apart.

    ``event()`` makes a timing event (``record()``, ``elapsed_time(other)`` in ms),
    ``flush`` is a tensor zeroed before each repetition, ``synchronize()`` waits for
    the device; the defaults are torch.cuda's for ``device``.
    """

    def __init__(self, device="cuda", event=None, flush=None, synchronize=None,
                 now: Callable[[], int] = time.perf_counter_ns):
        import torch

        self.event = event or (lambda: torch.cuda.Event(enable_timing=True))
        if flush is None:
            flush = torch.empty(flush_bytes(l2_cache_bytes(device)), dtype=torch.int8, device=device)
        self.flush = flush
        self.synchronize = synchronize or (lambda: torch.cuda.synchronize(device))
        self.now = now

    def block(self, fn, sync, reps: int) -> tuple[list[int], list[int]]:
        pairs, host = [], []
        for _ in range(reps):
            self.flush.zero_()
            start, end = self.event(), self.event()
            start.record()
            t0 = self.now()
            fn()
            host.append(self.now() - t0)
            end.record()
            pairs.append((start, end))
        self.synchronize()
        return [round(s.elapsed_time(e) * 1e6) for s, e in pairs], host


# ---------------------------------------------------------------------------
# The interleaved rounds.
# ---------------------------------------------------------------------------


def _warm(c: Candidate, cfg: TimingConfig) -> float:
    """Untimed calls for ``warmup_s`` (at least one); returns the per-call estimate (s)."""
    times = []
    start = time.perf_counter()
    while not times or (time.perf_counter() - start < cfg.warmup_s and len(times) < cfg.max_reps):
        t0 = time.perf_counter()
        c.fn()
        c.sync()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _done(m: Measurement, cfg: TimingConfig) -> bool:
    s = summarize(m.samples_ns)
    return m.rounds >= cfg.min_rounds and s["n"] >= cfg.min_reps and s["rel_iqr"] <= cfg.target_rel_iqr


def time_interleaved(candidates: Sequence[Candidate], cfg: TimingConfig = TimingConfig(), clock=None,
                     sleep: Callable[[float], None] = time.sleep,
                     watch: Callable[[], object] | None = None) -> dict[str, Measurement]:
    """Time every candidate in interleaved rounds; see the module docstring. ``watch``
    (``bench.load.read``) is called just before and after each timed block, outside it;
    the pairs of readings land in ``Measurement.readings``."""
    clock = clock or CpuClock()
    names = [c.name for c in candidates]
    if len(set(names)) != len(names):
        raise ValueError(f"time_interleaved: candidate names must be distinct, got {names}")
    per_call = {c.name: _warm(c, cfg) for c in candidates}
    cap = max(1, cfg.max_reps // 10)

    def block_reps(t: float) -> int:
        return int(min(cap, max(1, cfg.block_s // max(t, 1e-9))))

    reps = {n: block_reps(t) for n, t in per_call.items()}
    settle = 0.0 if env.spin_free() else cfg.settle_s
    out = {c.name: Measurement() for c in candidates}
    start = time.perf_counter()
    round_no = 0
    while True:
        order = list(candidates)
        if cfg.alternate and round_no % 2 == 1:
            order.reverse()
        for c in order:
            m = out[c.name]
            n = min(reps[c.name], cfg.max_reps - len(m.samples_ns))
            if n <= 0:
                continue
            if settle > 0:
                sleep(settle)
            if per_call[c.name] < cfg.wake_below_s:
                c.fn()
                c.sync()
            before = watch() if watch else None
            samples, host = clock.block(c.fn, c.sync, n)
            if watch:
                m.readings.append((before, watch()))
            m.samples_ns.extend(int(s) for s in samples)
            # the samples correct the warm-up's estimate, which a first call's compile or
            # cache load can inflate a thousandfold: a fast closure judged slow would get
            # no wake call and one sample a block, each paying its pool's wake-up
            per_call[c.name] = float(np.median(m.samples_ns)) / 1e9
            reps[c.name] = block_reps(per_call[c.name])
            if host is not None:
                m.host_ns = (m.host_ns or []) + [int(h) for h in host]
            m.rounds += 1
        round_no += 1
        if all(_done(m, cfg) for m in out.values()):
            reason = "precision"
        elif all(len(m.samples_ns) >= cfg.max_reps for m in out.values()):
            reason = "max_reps"
        elif time.perf_counter() - start >= cfg.budget_s:
            reason = "budget"
        else:
            continue
        for m in out.values():
            m.stop_reason = reason
        return out
