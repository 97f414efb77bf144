"""numba_cpu parallel_scan forward (through the registry, a fresh output per call) against
torch.add into a preallocated output, the same bytes moved (read a and b, write one
[4, 1024, 256] float32 tensor): the comparison issue 20 makes. Then the bare kernel into a
preallocated output, and the registry call under no_grad. Run: python scripts/scan_vs_add.py
(medians of 200 calls; run it on a quiet machine)."""
import time, torch
import backends
torch.manual_seed(0)
a = torch.rand(4, 1024, 256) * 0.9; b = torch.randn(4, 1024, 256); out = torch.empty_like(a)
scan = backends.get("parallel_scan", "numba_cpu")
def med(fn, n=200):
    for _ in range(10): fn()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter_ns(); fn(); ts.append(time.perf_counter_ns() - t0)
    ts.sort(); return ts[n // 2]
nbytes = 3 * a.numel() * 4
for rnd in range(3):
    s = med(lambda: scan(a, b)); t = med(lambda: torch.add(a, b, out=out))
    print(f"round {rnd}: scan {s/1e3:.0f} us {nbytes/s:.1f} GB/s; add {t/1e3:.0f} us {nbytes/t:.1f} GB/s; scan/add {t/s:.0%}")
from backends.numba_cpu import parallel_scan as ps
from backends.numba_cpu._common import scan_chunk, optional_array
h = torch.empty_like(a); h0, has = optional_array(None, (4, 256)); ch = scan_chunk(4, 256)
an, bn, hn = a.numpy(), b.numpy(), h.numpy()
k = med(lambda: ps._forward(an, bn, h0, has, ch, hn))
t = med(lambda: torch.add(a, b, out=out))
print(f"bare kernel into a preallocated output: {k/1e3:.0f} us {nbytes/k:.1f} GB/s; add {nbytes/t:.1f} GB/s; kernel/add {t/k:.0%}")
with torch.no_grad():
    g = med(lambda: scan(a, b))
print(f"registry call under no_grad: {g/1e3:.0f} us")
