"""numba_cpu parallel_scan forward (through the registry, a fresh output per call) against
torch.add into a preallocated output, the same bytes moved (read a and b, write one
[4, 1024, 256] float32 tensor): the comparison issue 20 makes (target: 80% of the add's
bytes per second). Then where the call's time goes, one layer added at a time: the bare
kernel into a preallocated output, into a fresh output, the Function's forward
(contiguity, addresses, the output), and the registry's checks.

Each layer alone costs a few microseconds in a loop of its own; measured here, between
kernels that stream 12 MB through the core's caches, it costs several times that (the
first torch call after such a kernel about 30 us, a NumPy view's ``.numpy()`` 36 us):
why the kernels take addresses, not NumPy views, and why a CPU call's device is one
shared object. The variants run interleaved (a few calls of each in turn, many rounds)
so that the machine's drift between them cancels; medians of the calls after each
variant's first three in a round.
Run: python scripts/scan_vs_add.py [rounds] (default 60; run it on a quiet machine)."""
import statistics
import sys
import time

import torch

import backends
from backends.functions import _NoGraph
from backends.numba_cpu import parallel_scan as ps
from backends.numba_cpu._common import scan_chunk

torch.manual_seed(0)
a = torch.rand(4, 1024, 256) * 0.9
b = torch.randn(4, 1024, 256)
out = torch.empty_like(a)
scan = backends.get("parallel_scan", "numba_cpu")
bare = (a.data_ptr(), b.data_ptr(), 0, *a.shape, scan_chunk(4, 256))  # the kernel's arguments but the output


def kernel_fresh():
    h = torch.empty_like(a)
    ps._forward(*bare, h.data_ptr())
    return h


VARIANTS = {
    "torch.add into a preallocated output": lambda: torch.add(a, b, out=out),
    "bare kernel into a preallocated output": lambda: ps._forward(*bare, out.data_ptr()),
    "kernel into a fresh output": kernel_fresh,
    "the Function's forward": lambda: ps._ParallelScan.forward(_NoGraph(), a, b, None),
    "through the registry": lambda: scan(a, b),
}


def main(rounds: int) -> None:
    ref = backends.get("parallel_scan", "torch")(a, b)
    if not torch.allclose(scan(a, b), ref, rtol=1e-4, atol=1e-4):
        sys.exit("parallel_scan[numba_cpu] disagrees with parallel_scan[torch]: nothing timed")
    times = {name: [] for name in VARIANTS}
    for _ in range(rounds):
        for name, fn in VARIANTS.items():
            for i in range(8):
                t0 = time.perf_counter_ns()
                fn()
                if i >= 3:  # the first calls after another variant pay for its cache state
                    times[name].append(time.perf_counter_ns() - t0)
    nbytes = 3 * a.numel() * a.element_size()
    add = statistics.median(times["torch.add into a preallocated output"])
    for name, ts in times.items():
        t = statistics.median(ts)
        print(f"{name}: {t / 1e3:.0f} us, {nbytes / t:.1f} GB/s, {add / t:.0%} of the add's bytes per second")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 60)
