"""logspace_matvec, Numba CPU: one exponential per input element, not per term.

The contract's terms factor: exp(log|w_ij| + x_log_bj - m) = |w_ij| exp(x_log_bj - c_b)
exp(c_b - m) with c_b = max_j x_log_bj. So with the scaled vector
xs_bj = x_sign_bj exp(x_log_bj - c_b) (entries in [-1, 1], exact zeros stay 0),
    y_bi = exp(c_b) r_bi,  r = xs @ w.T,  y_log = c_b + log|r_bi|,  y_sign = sign(r_bi),
a blocked matrix product in linear space with the overflow taken out by c_b. That is
exact (to float32 rounding, relative to the term scale sum_j |w_ij| |x_bj| the contract
judges by) as long as nothing underflows: a row b is *narrow* when its finite x_log
entries lie within SPREAD of c_b (no xs below ~1e-35), and an output keeps its fast
value when also |w_i,argmax| >= TINY (so the term scale is far above float32's denormal
range and nothing that underflowed could matter). Every other output, and any output
that is not finite, is recomputed by the contract's stable form (an exponential and a
logarithm per term); NaN and Inf then come out as the reference's do.

Backward (through y_log): d y_log_bi / d w_ij = x_bj / y_bi and d y_log_bi / d x_log_bj
= w_ij x_bj / y_bi. With G_bi = g_bi y_sign_bi exp(c_b - y_log_bi):
    dw = G.T @ xs,   dx_log = xs * (G @ w)
again two blocked products. Outputs whose G could overflow (c_b - y_log_bi > SPREAD_G,
heavy cancellation) or whose row is wide are left out of G and added term by term with
exp(x_log_bj - y_log_bi). Where y is exactly 0 (y_log = -inf) the gradient is taken as 0.
"""

import math

import numpy as np
import torch
from numba import njit, prange

from backends.functions import apply
from backends.numba_cpu._blocks import FAST, acc_tn, dot_nt
from backends.numba_cpu._common import as_array, empty_like, num_threads
from backends.numba_cpu.special import fexp, flog
from backends.registry import implements, new_output

SPREAD = 80.0  # narrow row: finite x_log within this of the row max (exp(-80) ~ 1.8e-35 > 1.2e-38)
TINY = 1e-30  # |w_i,argmax| at least this: the term scale stays far above the denormals
SPREAD_G = 60.0  # fast gradient only where exp(c_b - y_log_bi) <= exp(60)
ROWS = 16  # rows of w per parallel block
_NEG_INF = np.float32(-np.inf)


@njit(parallel=True, cache=True, fastmath=FAST)
def _scale_rows(x_log, x_sign, xs, c, jmax, narrow):
    """xs [B, K] = x_sign exp(x_log - c_b); c [B] the row max; jmax [B] its index;
    narrow [B] whether every finite x_log of the row is within SPREAD of c_b."""
    B, K = x_log.shape
    for b in prange(B):
        cb = _NEG_INF
        lo = -_NEG_INF
        jm = 0
        nan = False
        for j in range(K):
            v = x_log[b, j]
            if v > cb:
                cb = v
                jm = j
            if v > -np.inf and v < lo:
                lo = v
            nan |= math.isnan(v)
        if nan and cb == -np.inf:  # no finite entry to scale by: the row's outputs are NaN
            cb = np.float32(np.nan)
        c[b] = cb
        jmax[b] = jm
        narrow[b] = not nan and cb < np.inf and cb - lo <= SPREAD
        if cb == -np.inf:  # every entry an exact zero: y = 0
            cb = np.float32(0.0)
        for j in range(K):
            xs[b, j] = x_sign[b, j] * fexp(x_log[b, j] - cb)


@njit(cache=True)
def _stable(w, x_log, x_sign, b, i):
    """The contract's stable form for one output: (y_log, y_sign)."""
    K = w.shape[1]
    m = _NEG_INF
    for j in range(K):
        t = flog(abs(w[i, j])) + x_log[b, j]
        if t > m or math.isnan(t):
            m = t
            if math.isnan(t):
                break
    if m == -np.inf:
        return -np.inf, np.float32(1.0)
    acc = np.float32(0.0)
    for j in range(K):
        t = flog(abs(w[i, j])) + x_log[b, j]
        s = x_sign[b, j] if w[i, j] >= 0 else -x_sign[b, j]
        acc += s * fexp(t - m)
    return m + flog(abs(acc)), np.float32(1.0) if acc >= 0 else np.float32(-1.0)


@njit(parallel=True, cache=True, fastmath=FAST)
def _forward(w, x_log, x_sign, xs, c, jmax, narrow, y_log, y_sign):
    M, K = w.shape
    B = x_log.shape[0]
    _scale_rows(x_log, x_sign, xs, c, jmax, narrow)
    nblocks = (M + ROWS - 1) // ROWS
    for blk in prange(nblocks):
        i0 = blk * ROWS
        i1 = min(M, i0 + ROWS)
        r = np.empty((i1 - i0, B), dtype=np.float32)  # [rows, B]
        dot_nt(w[i0:i1], xs, r)
        for ii in range(i1 - i0):
            i = i0 + ii
            for b in range(B):
                v = r[ii, b]
                if c[b] == -np.inf:  # every x an exact zero
                    y_log[b, i] = -np.inf
                    y_sign[b, i] = 1.0
                elif narrow[b] and abs(w[i, jmax[b]]) >= TINY and math.isfinite(v):
                    y_log[b, i] = c[b] + flog(abs(v))
                    y_sign[b, i] = 1.0 if v >= 0 else -1.0
                else:
                    y_log[b, i], y_sign[b, i] = _stable(w, x_log, x_sign, b, i)


@njit(parallel=True, cache=True, fastmath=FAST)
def _backward(w, x_log, x_sign, xs, c, narrow, y_log, y_sign, g, dw, dx_log, P):
    """P: the number of threads (one partial sum of G @ w each)."""
    M, K = w.shape
    B = x_log.shape[0]
    G = np.zeros((B, M), dtype=np.float32)  # [B, M] the fast part's output weights
    slow = np.zeros((B, M), dtype=np.bool_)  # outputs added term by term
    for b in prange(B):
        for i in range(M):
            yl = y_log[b, i]
            if yl == -np.inf:
                continue
            if math.isfinite(yl) and not (narrow[b] and c[b] - yl <= SPREAD_G):
                slow[b, i] = True
                continue
            G[b, i] = g[b, i] * y_sign[b, i] * fexp(c[b] - yl)
    GT = np.ascontiguousarray(G.T)  # [M, B]
    H = np.zeros((P, B, K), dtype=np.float32)  # per-thread partial sums of G @ w
    nblocks = (M + ROWS - 1) // ROWS
    per = (nblocks + P - 1) // P
    for p in prange(P):  # one pass over w: dw = G.T @ xs (+ slow outputs), H_p += G @ w
        for blk in range(p * per, min(nblocks, (p + 1) * per)):
            i0 = blk * ROWS
            i1 = min(M, i0 + ROWS)
            out = dw[i0:i1]  # [rows, K]
            out[:] = 0.0
            acc_tn(G[:, i0:i1], xs, out)
            acc_tn(GT[i0:i1], w[i0:i1], H[p])
            for i in range(i0, i1):
                for b in range(B):
                    if slow[b, i]:
                        gs = g[b, i] * y_sign[b, i]
                        for j in range(K):
                            dw[i, j] += gs * x_sign[b, j] * fexp(x_log[b, j] - y_log[b, i])
    for b in prange(B):  # dx_log = xs * (G @ w) (+ slow outputs)
        for j in range(K):
            h = np.float32(0.0)
            for p in range(P):
                h += H[p, b, j]
            dx_log[b, j] = xs[b, j] * h
        for i in range(M):
            if slow[b, i]:
                gs = g[b, i] * y_sign[b, i]
                for j in range(K):
                    dx_log[b, j] += gs * w[i, j] * x_sign[b, j] * fexp(x_log[b, j] - y_log[b, i])


class _LogspaceMatvec(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w, x_log, x_sign):
        B, K = x_log.shape
        M = w.shape[0]
        y_log = new_output((B, M), torch.float32, w.device)
        y_sign = new_output((B, M), torch.float32, w.device)
        xs = torch.empty((B, K), dtype=torch.float32)
        c = torch.empty(B, dtype=torch.float32)
        jmax = torch.empty(B, dtype=torch.int64)
        narrow = torch.empty(B, dtype=torch.bool)
        _forward(as_array(w), as_array(x_log), as_array(x_sign), xs.numpy(), c.numpy(), jmax.numpy(),
                 narrow.numpy(), as_array(y_log), as_array(y_sign))
        ctx.save_for_backward(w, x_log, x_sign, xs, c, narrow, y_log, y_sign)
        ctx.mark_non_differentiable(y_sign)
        return y_log, y_sign

    @staticmethod
    def backward(ctx, g, _g_sign):
        w, x_log, x_sign, xs, c, narrow, y_log, y_sign = ctx.saved_tensors
        dw = empty_like(w)
        dx_log = empty_like(x_log)
        _backward(*[as_array(t) for t in (w, x_log, x_sign, xs, c, narrow, y_log, y_sign, g)],
                  as_array(dw), as_array(dx_log), num_threads())
        return dw, dx_log, None


@implements("logspace_matvec", dtypes=(torch.float32,))
def logspace_matvec(w, x_log, x_sign):
    return apply(_LogspaceMatvec, w, x_log, x_sign)
