"""logspace_matvec, Numba CUDA: one thread per output (b, i) walks the K terms once with
an online maximum: when a term exceeds the running maximum m, the positive and negative
sums P and N are rescaled by exp(m_old - m_new), so no term is ever exponentiated above
0 and nothing overflows or underflows wholesale. Exact zeros (log|w| + x_log = -inf) are
skipped, so a row of zeros ends with m = -inf: y_log = -inf, sign +1.

Backward, with g_bi = dy_log[b, i] y_sign[b, i] (d y_log / d t_j = s_j y_sign exp(t_j - y_log)):
    dx_log[b, j] = sum_i g_bi s_ij exp(t_bij - y_log[b, i])     one thread per (b, j), loop over i
    dw[i, j]     = sum_b g_bi x_sign[b, j] exp(x_log[b, j] - y_log[b, i])
                                                                one thread per (i, j), loop over b
(dw is d t / d w = 1 / w applied to the first form: sign(w) |w| / w = 1, so no division
and a finite gradient at w = 0.) Outputs with y_log = -inf (an exact zero, where the
derivative does not exist) and zero cotangents contribute nothing: exp(t - y_log) may be
inf there and 0 * inf would poison the sums with NaN.
Memory access: in the forward the threads of a warp share b (consecutive threads take
consecutive i), so x[b, j] is one broadcast load per step while each thread streams its
own row of w through the cache; in the backward consecutive threads take consecutive j,
so the loads of w and x coalesce.
"""

import math

import numpy as np
import torch
from numba import cuda

from backends.numba_cuda._common import BLOCK, ONE, SIMULATED, ZERO, blocks, contiguous, launch, output
from backends.registry import implements

NEG_INF = np.float32(-np.inf)
# The device's exp and log give inf and -inf (log 0, a zero w); the simulator runs Python's
# math, which raises there instead, so it gets NumPy's IEEE functions.
exp, log = (np.exp, np.log) if SIMULATED else (math.exp, math.log)


@cuda.jit(cache=True)
def _forward(w, x_log, x_sign, y_log, y_sign):
    # w: [M, K]; x_log, x_sign: [B, K]; y_log, y_sign: [B, M]
    M, K = w.shape
    B = x_log.shape[0]
    idx = cuda.grid(1)
    if idx >= B * M:
        return
    b, i = idx // M, idx % M
    m, pos, neg = NEG_INF, ZERO, ZERO
    for j in range(K):
        wij = w[i, j]
        t = log(abs(wij)) + x_log[b, j]
        if t == NEG_INF:
            continue
        if t > m:  # new maximum: rescale what was summed so far
            scale = exp(m - t)
            pos *= scale
            neg *= scale
            m = t
        e = exp(t - m)
        s = -x_sign[b, j] if wij < 0 else x_sign[b, j]
        if s > 0:
            pos += e
        elif s < 0:
            neg += e
    if m == NEG_INF:
        y_log[b, i] = NEG_INF
        y_sign[b, i] = ONE
    else:
        y_log[b, i] = m + log(abs(pos - neg))
        y_sign[b, i] = ONE if pos >= neg else -ONE


@cuda.jit(cache=True)
def _backward_x(w, x_log, x_sign, y_log, y_sign, dy, dx):
    # dx: [B, K]; dy: [B, M]
    M, K = w.shape
    B = x_log.shape[0]
    idx = cuda.grid(1)
    if idx >= B * K:
        return
    b, j = idx // K, idx % K
    acc = ZERO
    for i in range(M):
        g = dy[b, i]
        yl = y_log[b, i]
        if g == 0 or yl == NEG_INF:
            continue
        wij = w[i, j]
        s = -x_sign[b, j] if wij < 0 else x_sign[b, j]
        acc += g * y_sign[b, i] * s * exp(log(abs(wij)) + x_log[b, j] - yl)
    dx[b, j] = acc


@cuda.jit(cache=True)
def _backward_w(x_log, x_sign, y_log, y_sign, dy, dw):
    # dw: [M, K]
    M, K = dw.shape
    B = x_log.shape[0]
    idx = cuda.grid(1)
    if idx >= M * K:
        return
    i, j = idx // K, idx % K
    acc = ZERO
    for b in range(B):
        g = dy[b, i]
        yl = y_log[b, i]
        if g == 0 or yl == NEG_INF:
            continue
        acc += g * y_sign[b, i] * x_sign[b, j] * exp(x_log[b, j] - yl)
    dw[i, j] = acc


class _LogMatvec(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w, x_log, x_sign):
        w, x_log, x_sign = contiguous(w, x_log, x_sign)
        M, B = w.shape[0], x_log.shape[0]
        y_log, y_sign = output((B, M), w), output((B, M), w)
        launch(_forward, blocks(B * M), BLOCK, w, x_log, x_sign, y_log, y_sign)
        ctx.save_for_backward(w, x_log, x_sign, y_log, y_sign)
        ctx.mark_non_differentiable(y_sign)
        return y_log, y_sign

    @staticmethod
    def backward(ctx, dy_log, dy_sign):
        w, x_log, x_sign, y_log, y_sign = ctx.saved_tensors
        (dy,) = contiguous(dy_log)
        (M, K), B = w.shape, x_log.shape[0]
        dw, dx = output((M, K), w), output((B, K), w)
        launch(_backward_x, blocks(B * K), BLOCK, w, x_log, x_sign, y_log, y_sign, dy, dx)
        launch(_backward_w, blocks(M * K), BLOCK, x_log, x_sign, y_log, y_sign, dy, dw)
        return dw, dx, None


@implements("logspace_matvec", dtypes=(torch.float32,))
def logspace_matvec(w, x_log, x_sign):
    return _LogMatvec.apply(w, x_log, x_sign)
