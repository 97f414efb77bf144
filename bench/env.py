"""The environment a figure was measured in, and the thread settings that make it stable.

Every result record carries ``environment()``: git commit, package versions, CPU and
GPU model, thread counts and the OpenMP/Numba runtime settings. ``machine_fingerprint``
is the part that decides whether two runs share a roofline (same hardware, same torch,
same thread count).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("torch", "numpy", "numba", "numba-cuda", "triton", "scipy", "pandas")
# Runtime knobs that change CPU timings; every record stores those that are set. The
# harness leaves them at the runtimes' defaults (see bench/timing.py for why).
RUNTIME_VARIABLES = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME",
                     "MKL_NUM_THREADS", "NUMBA_NUM_THREADS", "NUMBA_THREADING_LAYER",
                     "TRITON_INTERPRET", "NUMBA_ENABLE_CUDASIM", "MALLOC_MMAP_THRESHOLD_",
                     "MALLOC_TRIM_THRESHOLD_")
# glibc malloc's thresholds, fixed in a benchmark process (``fix_allocator``). Left alone,
# glibc adapts them as the process frees memory, so whether a 1 MiB tensor is reused from
# the heap or mapped afresh (page faults, pages zeroed by the kernel) depends on what the
# process did before: on the development machine the same torch stack_step forward took
# 0.65 ms in one process and 2.6 ms in the next (33 against 1248 minor page faults per
# call). Fixed, blocks up to 32 MiB (glibc's ceiling for this setting) come from the heap
# and freed memory is kept up to 1 GiB: every process reaches the same steady state, the
# one of a long-running job whose allocator is warm. Bigger blocks are mapped afresh on
# every call, in every process alike.
MALLOC_SETTINGS = {"mmap_threshold": 32 << 20, "trim_threshold": 1 << 30}
_MALLOPT = {"mmap_threshold": (-3, "MALLOC_MMAP_THRESHOLD_"), "trim_threshold": (-1, "MALLOC_TRIM_THRESHOLD_")}
_allocator: dict = {}  # what fix_allocator applied in this process (recorded with results)


def spin_free(environ=os.environ) -> bool:
    """Whether idle GNU OpenMP workers sleep at once: GOMP_SPINCOUNT=0, or
    OMP_WAIT_POLICY=PASSIVE with no GOMP_SPINCOUNT (which takes precedence in libgomp)."""
    spin = environ.get("GOMP_SPINCOUNT", "").strip()
    if spin:
        return spin == "0"
    return environ.get("OMP_WAIT_POLICY", "").strip().upper() == "PASSIVE"


def numba_available() -> bool:
    return importlib.util.find_spec("numba") is not None


def fix_threads(threads: int | None = None) -> dict:
    """Pin torch's and Numba's CPU thread counts (default: every core) and return them."""
    import torch

    n = threads or os.cpu_count() or 1
    counts = {"torch": None, "numba": None}
    if numba_available():
        import numba

        # Numba first: its first set_num_threads launches its threading layer, and the
        # OpenMP layer shares torch's libgomp and sets the process's OpenMP thread count to
        # NUMBA_NUM_THREADS, so torch pinned before it ran on every core again (two
        # one-thread bake-off cells side by side ran 2 threads each: 4-16x slower steps)
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
        counts["numba"] = numba.get_num_threads()
    torch.set_num_threads(n)
    counts["torch"] = torch.get_num_threads()
    return counts


def fix_allocator() -> dict:
    """Apply MALLOC_SETTINGS with glibc's ``mallopt`` (not where the user set the matching
    MALLOC_*_ variable, nor where the C library is not glibc); returns what was applied."""
    if platform.libc_ver()[0] != "glibc":
        return {}
    import ctypes

    mallopt = ctypes.CDLL(None).mallopt
    for name, value in MALLOC_SETTINGS.items():
        param, variable = _MALLOPT[name]
        if variable not in os.environ and mallopt(param, value) == 1:
            _allocator[name] = value
    return dict(_allocator)


def pin_process(threads: int | None = None) -> dict:
    """What a benchmark process fixes before timing anything: thread counts
    (``fix_threads``, returned) and the allocator (``fix_allocator``)."""
    fix_allocator()
    return fix_threads(threads)


def thread_counts() -> dict:
    import torch

    counts = {"torch": torch.get_num_threads(), "torch_interop": torch.get_num_interop_threads(), "numba": None}
    if "numba" in sys.modules:
        import numba

        counts["numba"] = numba.get_num_threads()
        counts["numba_layer"] = numba.config.THREADING_LAYER
    return counts


@functools.lru_cache(maxsize=1)
def git_state() -> dict:
    """{"commit": sha or None, "dirty": tracked files differ from the commit}."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return {"commit": None, "dirty": None}
        dirty = git("status", "--porcelain", "--untracked-files=no")
        return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


@functools.lru_cache(maxsize=1)
def package_versions() -> dict:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_model(device) -> str | None:
    import torch

    if torch.device(device).type != "cuda":
        return None
    return torch.cuda.get_device_name(torch.device(device))


def cpu_times() -> tuple[int, int] | None:
    """(steal, total) CPU time in clock ticks since boot, all CPUs (Linux ``/proc/stat``);
    None elsewhere. Steal is time the hypervisor gave this virtual machine's CPUs to
    others: timings taken while it grows are slowed by something no process here sees."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    if fields[0] != "cpu" or len(fields) < 9:
        return None
    ticks = [int(x) for x in fields[1:9]]  # user nice system idle iowait irq softirq steal
    return ticks[7], sum(ticks)


def steal_fraction(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """The fraction of CPU time stolen between two ``cpu_times`` readings."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages: how busy the machine was (timing noise)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def environment(device="cpu") -> dict:
    """The fingerprint stored with every result."""
    return {
        "git": git_state(),
        "packages": package_versions(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpu": gpu_model(device),
        "threads": thread_counts(),
        "loadavg": load_average(),
        "runtime": {k: os.environ[k] for k in RUNTIME_VARIABLES if k in os.environ},
        "malloc": dict(_allocator),
    }


def machine_fingerprint(device="cpu") -> str:
    """A short hash of what the roofline depends on: hardware, torch, thread count."""
    import torch

    key = {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpu": gpu_model(device),
        "device": torch.device(device).type,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    return hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
