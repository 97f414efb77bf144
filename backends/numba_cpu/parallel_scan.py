"""parallel_scan, Numba CPU: a streaming sequential scan over t, SIMD across D.

On a CPU the recurrence is bandwidth-bound: a sequential pass reads a and b once and
writes h once, the minimum traffic, while a parallel (log-depth) scan re-reads them. So
each job owns one (b, D-chunk) pair and walks t in order; inside a step the chunk's lanes
are contiguous in memory ([B, T, D] with D innermost) and vectorise, and the state stays
in a small private buffer in L1. Jobs are spread over the threads with prange.

Backward: the reverse scan g_t = dh_t + a_{t+1} g_{t+1} in the same job layout, writing
db_t = g_t and da_t = g_t h_{t-1} as it goes; dh0 = a_0 g_0.
"""

import numpy as np
import torch
from numba import njit, prange

from backends.functions import apply
from backends.numba_cpu._common import (as_array, nonneg, optional_state, prefer_huge_pages, scan_chunk,
                                        scan_gradients, scan_job, wide_vectors)
from backends.registry import implements, new_output


@njit(cache=True, parallel=True)
def _forward(a, b, h0, has_h0, chunk, h):
    # a, b, h [B, T, D]; h0 [B, D]
    B, T, D = a.shape
    a, b, h = a.reshape(-1), b.reshape(-1), h.reshape(-1)
    h0 = h0.reshape(-1)
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
def _backward(a, h, h0, has_h0, dh, chunk, da, db, dh0):
    # a, h, dh, da, db [B, T, D]; h0, dh0 [B, D]
    B, T, D = a.shape
    a, h, dh, da, db = a.reshape(-1), h.reshape(-1), dh.reshape(-1), da.reshape(-1), db.reshape(-1)
    h0, dh0 = h0.reshape(-1), dh0.reshape(-1)
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
        h = prefer_huge_pages(new_output((B, T, D), a.dtype, a.device))
        h0_arr, has_h0 = optional_state(h0)
        _forward(as_array(a), as_array(b), h0_arr, has_h0, scan_chunk(B, D), h.numpy())
        ctx.save_for_backward(a, h, h0)
        return h

    @staticmethod
    def backward(ctx, dh):
        a, h, h0 = ctx.saved_tensors
        B, T, D = a.shape
        da, db, dh0 = scan_gradients(a)
        h0_arr, has_h0 = optional_state(h0)
        _backward(as_array(a), h.numpy(), h0_arr, has_h0, as_array(dh), scan_chunk(B, D),
                  da.numpy(), db.numpy(), dh0.numpy())
        return da, db, (dh0 if has_h0 else None)


@implements("parallel_scan", dtypes=(torch.float32,))
def parallel_scan(a, b, h0=None):
    return apply(_ParallelScan, a, b, h0)
