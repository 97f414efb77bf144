"""gated_update, Numba CUDA: one thread per (b, d) channel walks time with the state in
a register (the bounded update is a nonlinear recurrence, sequential in t). Consecutive
threads hold consecutive channels, so loads and stores coalesce along D.

The backward walks time in reverse on the linear recurrence of q_t = dL/dz_t,
    q_t = c_t (dh_t + q_{t+1}),  c_t = 1 - (h_t / bound)^2  (c_t = 1 without a bound),
then da_t = q_t (1 - tanh(a_t)^2) sigmoid(b_t), db_t = q_t tanh(a_t) sigmoid'(b_t), dh0 = q_0.
``bound`` is passed as 0 for "no bound" (a real bound is > 0).
"""

import math

import numpy as np
import torch
from numba import cuda

from backends.numba_cuda._common import BLOCK, ONE, ZERO, blocks, contiguous, launch, optional, output, sigmoid
from backends.registry import implements


@cuda.jit(cache=True)
def _forward(a, b, h0, has_h0, bound, h):
    # a, b, h: [B, T, D]; h0: [B, D] (read only if has_h0)
    B, T, D = a.shape
    i = cuda.grid(1)
    if i >= B * D:
        return
    n, d = i // D, i % D
    state = h0[n, d] if has_h0 else ZERO
    for t in range(T):
        state += math.tanh(a[n, t, d]) * sigmoid(b[n, t, d])
        if bound > 0:
            state = bound * math.tanh(state / bound)
        h[n, t, d] = state


@cuda.jit(cache=True)
def _backward(a, b, h, bound, dh, da, db, dh0):
    # a, b, h, dh, da, db: [B, T, D]; dh0: [B, D]
    B, T, D = a.shape
    i = cuda.grid(1)
    if i >= B * D:
        return
    n, d = i // D, i % D
    q = ZERO  # q_{t+1}, zero past the end
    for t in range(T - 1, -1, -1):
        q = dh[n, t, d] + q
        if bound > 0:
            r = h[n, t, d] / bound
            q *= ONE - r * r
        ta = math.tanh(a[n, t, d])
        sb = sigmoid(b[n, t, d])
        da[n, t, d] = q * (ONE - ta * ta) * sb
        db[n, t, d] = q * ta * sb * (ONE - sb)
    dh0[n, d] = q


class _Gated(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b, h0, bound):
        a, b = contiguous(a, b)
        h0_arr, has_h0 = optional(h0, a, 2)
        B, T, D = a.shape
        h = output((B, T, D), a)
        launch(_forward, blocks(B * D), BLOCK, a, b, h0_arr, has_h0, bound, h)
        ctx.save_for_backward(a, b, h)
        ctx.bound, ctx.has_h0 = bound, has_h0
        return h

    @staticmethod
    def backward(ctx, dh):
        a, b, h = ctx.saved_tensors
        (dh,) = contiguous(dh)
        B, T, D = a.shape
        da, db, dh0 = output(a.shape, a), output(a.shape, a), output((B, D), a)
        launch(_backward, blocks(B * D), BLOCK, a, b, h, ctx.bound, dh, da, db, dh0)
        return da, db, (dh0 if ctx.has_h0 else None), None


@implements("gated_update", dtypes=(torch.float32,))
def gated_update(a, b, h0=None, bound=None):
    # a float32 bound keeps the kernel arithmetic in float32
    return _Gated.apply(a, b, h0, np.float32(0.0 if bound is None else bound))
