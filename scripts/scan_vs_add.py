"""numba_cpu parallel_scan forward (through the registry, a fresh output per call) against
torch.add into a preallocated output, the same bytes moved (read a and b, write one
[4, 1024, 256] float32 tensor): the comparison issue 20 makes. Then where the call's time
goes, one layer added at a time: the bare kernel into a preallocated output, into a fresh
output, the Function's forward (argument views, options, the output), and the registry's
checks. Each layer alone costs a few microseconds in a loop of its own; measured here
between kernels that stream 12 MB through the caches, it costs several times that.
Run: python scripts/scan_vs_add.py (medians of 200 calls; run it on a quiet machine)."""
import time

import torch

import backends
from backends.functions import _NoGraph
from backends.numba_cpu import parallel_scan as ps
from backends.numba_cpu._common import optional_state, scan_chunk

torch.manual_seed(0)
a = torch.rand(4, 1024, 256) * 0.9
b = torch.randn(4, 1024, 256)
out = torch.empty_like(a)
scan = backends.get("parallel_scan", "numba_cpu")
an, bn, hn = a.numpy(), b.numpy(), out.numpy()
h0, has_h0 = optional_state(None)
chunk = scan_chunk(4, 256)


def med(fn, n=200):
    for _ in range(10):
        fn()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        fn()
        ts.append(time.perf_counter_ns() - t0)
    ts.sort()
    return ts[n // 2]


def kernel_fresh():
    h = torch.empty_like(a)
    ps._forward(an, bn, h0, has_h0, chunk, h.numpy())
    return h


nbytes = 3 * a.numel() * 4
for rnd in range(3):
    s, t = med(lambda: scan(a, b)), med(lambda: torch.add(a, b, out=out))
    print(f"round {rnd}: scan {s/1e3:.0f} us {nbytes/s:.1f} GB/s; add {t/1e3:.0f} us {nbytes/t:.1f} GB/s; scan/add {t/s:.0%}")
layers = [("bare kernel into a preallocated output", lambda: ps._forward(an, bn, h0, has_h0, chunk, hn)),
          ("kernel into a fresh output", kernel_fresh),
          ("the Function's forward", lambda: ps._ParallelScan.forward(_NoGraph(), a, b, None)),
          ("through the registry", lambda: scan(a, b))]
add = med(lambda: torch.add(a, b, out=out))
for name, fn in layers:
    k = med(fn)
    print(f"{name}: {k/1e3:.0f} us, {nbytes/k:.1f} GB/s, {add/k:.0%} of the add's bytes per second")
