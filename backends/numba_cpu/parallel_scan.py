"""parallel_scan, Numba CPU: a streaming sequential scan over t, SIMD across D.

On a CPU the recurrence is bandwidth-bound: a sequential pass reads a and b once and
writes h once, the minimum traffic, while a parallel (log-depth) scan re-reads them. So
each job owns one (b, D-chunk) pair and walks t in order; inside a step the chunk's lanes
are contiguous in memory ([B, T, D] with D innermost) and vectorise, and the state stays
in a small private buffer in L1. Jobs are spread over the threads with prange.

The kernels take the tensors' addresses (``floats_at``), not NumPy views: between two
kernels that stream megabytes each torch and NumPy call costs several times its usual
price, and the views were most of the call's overhead (B=4, T=1024, D=256 on the
2-core development CPU: scripts/scan_vs_add.py).

Backward: the reverse scan g_t = dh_t + a_{t+1} g_{t+1} in the same job layout, writing
db_t = g_t and da_t = g_t h_{t-1} as it goes; dh0 = a_0 g_0.
"""

import numpy as np
import torch
from numba import njit, prange

from backends.functions import apply
from backends.numba_cpu._common import (address, dense, floats_at, nonneg, prefer_huge_pages, scan_chunk,
                                        scan_gradients, scan_job, wide_vectors)
from backends.registry import implements, new_output_like


@njit(cache=True, parallel=True)
def _forward(a, b, h0, B, T, D, chunk, h):
    # addresses of a, b, h [B, T, D] and h0 [B, D] (0: no h0)
    has_h0 = h0 != 0
    a, b, h = floats_at(a, B * T * D), floats_at(b, B * T * D), floats_at(h, B * T * D)
    h0 = floats_at(h0, B * D if has_h0 else 0)
    for job in prange(B * ((D + chunk - 1) // chunk)):
        wide_vectors()
        bi, d0, w = scan_job(job, chunk, D)
        state = np.zeros(w, np.float32)  # h_{t-1} of the chunk's lanes
        if has_h0:
            for j in range(w):
                state[j] = h0[nonneg(bi * D + d0 + j)]
        for t in range(T):
            row = nonneg((bi * T + t) * D + d0)
            for j in range(w):
                s = a[row + j] * state[j] + b[row + j]
                state[j] = s
                h[row + j] = s


@njit(cache=True, parallel=True)
def _backward(a, h, h0, dh, B, T, D, chunk, da, db, dh0):
    # addresses of a, h, dh, da, db [B, T, D] and h0 (0: no h0), dh0 [B, D]
    has_h0 = h0 != 0
    n = B * T * D
    a, h, dh, da, db = floats_at(a, n), floats_at(h, n), floats_at(dh, n), floats_at(da, n), floats_at(db, n)
    h0, dh0 = floats_at(h0, B * D if has_h0 else 0), floats_at(dh0, B * D)
    for job in prange(B * ((D + chunk - 1) // chunk)):
        wide_vectors()
        bi, d0, w = scan_job(job, chunk, D)
        g = np.zeros(w, np.float32)  # g_t of the chunk's lanes, from g_{T-1} = dh_{T-1}
        last = nonneg(((bi + 1) * T - 1) * D + d0)
        for j in range(w):
            g[j] = dh[last + j]
        for t in range(T - 1, 0, -1):
            row = nonneg((bi * T + t) * D + d0)
            for j in range(w):
                gt = g[j]
                db[row + j] = gt
                da[row + j] = gt * h[row - D + j]
                g[j] = dh[row - D + j] + a[row + j] * gt  # g_{t-1}
        row = nonneg(bi * T * D + d0)
        first = nonneg(bi * D + d0)
        for j in range(w):
            gt = g[j]
            db[row + j] = gt
            da[row + j] = gt * (h0[first + j] if has_h0 else np.float32(0.0))
            dh0[first + j] = a[row + j] * gt


class _ParallelScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b, h0):
        B, T, D = a.shape
        h = prefer_huge_pages(new_output_like(a))
        x, y, s = dense(a), dense(b), dense(h0)  # alive until the kernel returns
        _forward(x.data_ptr(), y.data_ptr(), address(s), B, T, D, scan_chunk(B, D), h.data_ptr())
        ctx.save_for_backward(a, h, h0)
        return h

    @staticmethod
    def backward(ctx, dh):
        a, h, h0 = ctx.saved_tensors
        B, T, D = a.shape
        da, db, dh0 = scan_gradients(a)
        x, g, s = dense(a), dense(dh), dense(h0)
        _backward(x.data_ptr(), h.data_ptr(), address(s), g.data_ptr(), B, T, D, scan_chunk(B, D),
                  da.data_ptr(), db.data_ptr(), dh0.data_ptr())
        return da, db, (dh0 if h0 is not None else None)


@implements("parallel_scan", dtypes=(torch.float32,))
def parallel_scan(a, b, h0=None):
    return apply(_ParallelScan, a, b, h0)
