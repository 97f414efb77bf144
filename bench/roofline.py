"""The machine's own ceilings, and every result set against them.

Measured once per machine fingerprint (``bench.env.machine_fingerprint``) and cached in
``$ARSENAL_CACHE_DIR`` or ``~/.cache/arsenal`` as ``roofline-<fingerprint>.json``
(written atomically); ``arsenal roofline --refresh`` measures again and keeps, figure by
figure, the better of the old and new values (delete the file to start over).

- Copy bandwidth: ``dst.copy_(src)``, bytes moved = read + write, at working sets from
  256 KiB to 1 GiB. ``copy_gbps`` is the largest set (main memory). A result's bandwidth
  ceiling is the curve at its own traffic (the measured point at or just below it), so
  an op whose data sits in a large L3 is held to the cache's bandwidth, not to DRAM's.
- Matrix multiply: float32 and bfloat16 ``torch.mm`` of square matrices (a few sizes,
  the best rate counts), 2 n^3 flops. A float64 op is held to the float32 rate (an
  upper bound of its own); a bfloat16 op to the better of the two.
- On a CPU both are measured with one thread and with the pinned thread count, and the
  better figure is the ceiling (see ``_thread_counts``).
Each ceiling is the best repetition within a second or two (a ceiling is what the
machine can do; other load only ever makes a repetition slower). The load average at
the time is stored with the ceilings: on a busy machine they come out low, and results
then exceed them ("wrong_model"); ``arsenal roofline --refresh`` on a quiet machine.

A result's figures: GB/s = bytes / time, GFLOP/s = flops / time, with bytes and flops
from the op's contract; pct_bandwidth and pct_flops against the ceilings, and
pct_roofline = the larger of the two (the fraction of the roofline time bound
max(bytes / bandwidth, flops / peak) that the measured time achieves). A figure over
100% cannot be a measurement of that model: the record's status says "wrong_model".
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from bench import env
from bench.timing import CpuClock, CudaClock

KIB = 1 << 10
COPY_TRAFFIC = tuple(256 * KIB * 4 ** i for i in range(8))  # bytes read + written: 256 KiB .. 4 GiB
CPU_MAX_TRAFFIC = 1 << 30  # a CPU's main memory is reached well before 1 GiB
MATMUL_N = {"cpu": (512, 1024, 2048), "cuda": (4096, 8192)}  # square sizes; the best counts
MATMUL_DTYPES = ("float32", "bfloat16")


def cache_dir() -> Path:
    if os.environ.get("ARSENAL_CACHE_DIR"):
        return Path(os.environ["ARSENAL_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "arsenal"


def cache_path(device="cpu") -> Path:
    return cache_dir() / f"roofline-{env.machine_fingerprint(device)}.json"


def _best_ns(fn, device, budget_s: float = 1.0, max_reps: int = 50) -> int:
    """The fastest of repetitions of ``fn`` (after one untimed call) within a budget."""
    import torch

    cuda = torch.device(device).type == "cuda"
    clock = CudaClock(device, flush=torch.empty(0, device=device)) if cuda else CpuClock()
    fn()
    best, start, reps = None, time.perf_counter(), 0
    while reps < 3 or (time.perf_counter() - start < budget_s and reps < max_reps):
        (ns,), _ = clock.block(fn, lambda: None, 1)
        best = ns if best is None else min(best, ns)
        reps += 1
    return max(int(best), 1)


def _thread_counts(kind: str) -> list[int]:
    """CPU ceilings are measured with one thread and with the pinned count: on a shared
    machine a parallel region waits for its slowest, descheduled thread, while one
    thread's best repetition still shows what a core can do. The ceiling is the better."""
    import torch

    return sorted({1, torch.get_num_threads()}) if kind == "cpu" else [0]


def measure(device="cpu", max_traffic: int | None = None) -> dict:
    """Measure the ceilings of ``device`` now (tens of seconds on a CPU)."""
    import torch

    kind = torch.device(device).type
    limit = max_traffic or (COPY_TRAFFIC[-1] if kind == "cuda" else CPU_MAX_TRAFFIC)
    pinned = torch.get_num_threads()
    copy, matmul = [], []
    try:
        for threads in _thread_counts(kind):
            if threads:
                torch.set_num_threads(threads)
            for traffic in (t for t in COPY_TRAFFIC if t <= limit):
                n = traffic // 2 // 4  # float32 elements of src (and of dst)
                src = torch.rand(n, device=device)
                dst = torch.empty_like(src)
                ns = _best_ns(lambda: dst.copy_(src), device)
                copy.append({"bytes": 2 * n * 4, "threads": threads, "gbps": 2 * n * 4 / ns})
                del src, dst
            for name in MATMUL_DTYPES:
                for n in MATMUL_N[kind]:
                    a = torch.randn(n, n, device=device).to(getattr(torch, name))
                    b = torch.randn(n, n, device=device).to(getattr(torch, name))
                    ns = _best_ns(lambda: torch.mm(a, b), device, budget_s=1.0, max_reps=20)
                    matmul.append({"dtype": name, "n": n, "threads": threads, "gflops": 2.0 * n ** 3 / ns})
    finally:
        torch.set_num_threads(pinned)
    curve = {}
    for p in copy:  # per working set, the best thread count
        if p["gbps"] > curve.get(p["bytes"], {"gbps": 0.0})["gbps"]:
            curve[p["bytes"]] = p
    curve = [curve[b] for b in sorted(curve)]
    return {
        "fingerprint": env.machine_fingerprint(device),
        "device": kind,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "copy": curve,
        "copy_gbps": curve[-1]["gbps"],
        "matmul_gflops": {name: max(m["gflops"] for m in matmul if m["dtype"] == name) for name in MATMUL_DTYPES},
        "matmul": matmul,
        "copy_all": copy,
        "loadavg": env.load_average(),
        "env": env.environment(device),
    }


def _write_atomic(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _cached(path: Path, device) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if data.get("fingerprint") == env.machine_fingerprint(device) else None


def best_of(old: dict, new: dict) -> dict:
    """The new measurement with each figure raised to the old one where that was better:
    a ceiling is what the machine has been seen to do, and load only ever lowers it."""
    old_copy = {p["bytes"]: p for p in old["copy"]}
    copy = [max(p, old_copy.get(p["bytes"], p), key=lambda q: q["gbps"]) for p in new["copy"]]
    rates = {k: max(v, old["matmul_gflops"].get(k, 0.0)) for k, v in new["matmul_gflops"].items()}
    return dict(new, copy=copy, copy_gbps=copy[-1]["gbps"], matmul_gflops=rates,
                history=old.get("history", []) + [{k: old.get(k) for k in ("measured_at", "loadavg", "copy_gbps",
                                                                           "matmul_gflops")}])


def ceilings(device="cpu", refresh: bool = False) -> dict:
    """The cached ceilings of this machine, measured first if absent. ``refresh``
    measures again and keeps, figure by figure, the better of the cached and new values."""
    path = cache_path(device)
    old = _cached(path, device) if path.exists() else None
    if old is not None and not refresh:
        return old
    data = measure(device)
    if old is not None:
        data = best_of(old, data)
    _write_atomic(path, data)
    return data


def bandwidth_at(ceil: dict, traffic: float) -> float:
    """GB/s ceiling for an op moving ``traffic`` bytes: the copy curve's point at or just
    below that working set (the smallest point for smaller ones)."""
    points = sorted(ceil["copy"], key=lambda p: p["bytes"])
    best = points[0]["gbps"]
    for p in points:
        if p["bytes"] <= traffic:
            best = p["gbps"]
    return best


def flops_ceiling(ceil: dict, dtype: str) -> float:
    rates = ceil["matmul_gflops"]
    if dtype == "bfloat16":
        return max(rates.values())
    return rates["float32"]


def derive(ceil: dict, flops: float, nbytes: float, seconds: float, dtype: str) -> dict:
    """GB/s, GFLOP/s and percentages of the ceilings for one timed result."""
    gbps = nbytes / seconds / 1e9
    gflops = flops / seconds / 1e9
    bw = bandwidth_at(ceil, nbytes)
    peak = flops_ceiling(ceil, dtype)
    pct_bw, pct_fl = 100.0 * gbps / bw, 100.0 * gflops / peak
    return {
        "gbps": gbps,
        "gflops": gflops,
        "pct_bandwidth": pct_bw,
        "pct_flops": pct_fl,
        "pct_roofline": max(pct_bw, pct_fl),
        "roofline": {"fingerprint": ceil["fingerprint"], "gbps": bw, "gflops": peak,
                     "bound": "memory" if nbytes / bw >= flops / peak else "compute"},
    }
