"""parallel_scan, Numba CUDA: one thread per (b, d) channel walks time with the state in
a register. Consecutive threads hold consecutive channels, so every step's loads and
stores are coalesced along D. The backward is the same walk in reverse time on the
shifted gates, g_t = dh_t + a_{t+1} g_{t+1}.
"""

import torch
from numba import cuda

from backends.numba_cuda._common import BLOCK, ZERO, blocks, contiguous, launch, optional, output
from backends.registry import implements


@cuda.jit(cache=True)
def _forward(a, b, h0, has_h0, h):
    # a, b, h: [B, T, D]; h0: [B, D] (read only if has_h0)
    B, T, D = a.shape
    i = cuda.grid(1)
    if i >= B * D:
        return
    n, d = i // D, i % D
    state = h0[n, d] if has_h0 else ZERO
    for t in range(T):
        state = a[n, t, d] * state + b[n, t, d]
        h[n, t, d] = state


@cuda.jit(cache=True)
def _backward(a, h, h0, has_h0, dh, da, db, dh0):
    # a, h, dh, da, db: [B, T, D]; h0, dh0: [B, D]
    B, T, D = a.shape
    i = cuda.grid(1)
    if i >= B * D:
        return
    n, d = i // D, i % D
    g = ZERO  # a_{t+1} g_{t+1}, zero past the end
    for t in range(T - 1, -1, -1):
        g = dh[n, t, d] + g
        if t > 0:
            prev = h[n, t - 1, d]
        else:
            prev = h0[n, d] if has_h0 else ZERO
        db[n, t, d] = g
        da[n, t, d] = g * prev
        g = a[n, t, d] * g
    dh0[n, d] = g  # a_0 g_0


class _Scan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b, h0):
        a, b = contiguous(a, b)
        h0_arr, has_h0 = optional(h0, a, 2)
        B, T, D = a.shape
        h = output((B, T, D), a)
        launch(_forward, blocks(B * D), BLOCK, a, b, h0_arr, has_h0, h)
        ctx.save_for_backward(a, h, h0_arr)
        ctx.has_h0 = has_h0
        return h

    @staticmethod
    def backward(ctx, dh):
        a, h, h0_arr = ctx.saved_tensors
        (dh,) = contiguous(dh)
        B, T, D = a.shape
        da, db, dh0 = output(a.shape, a), output(a.shape, a), output((B, D), a)
        launch(_backward, blocks(B * D), BLOCK, a, h, h0_arr, ctx.has_h0, dh, da, db, dh0)
        return da, db, (dh0 if ctx.has_h0 else None)


@implements("parallel_scan", dtypes=(torch.float32,))
def parallel_scan(a, b, h0=None):
    return _Scan.apply(a, b, h0)
