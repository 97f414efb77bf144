"""nsm_route, Numba CPU: logits, softmax or top-k, and the weighted sum in one pass
over the tokens.

Work items are (batch row b, a contiguous part of its tokens); an item walks its tokens
in blocks of TOKENS, so each block of x is read from memory once and stays in cache for
the three uses: the logits (a register-blocked product with w_route), the routing
weights, and the accumulation into the item's [S, D] states. With top_k much smaller
than S the weights are sparse, so the accumulation (and the backward) touches only the
kept states of each token: top_k D instead of S D multiply-adds per token.

Top-k keeps the k largest logits, ties to the lower index: one pass that inserts into a
sorted list of the k best so far.

Backward, with p = weights of one token and gp = d weights + d states . x_t:
    dlogits = p * (gp - p . gp)   (zero for masked and dropped states, where p = 0)
    dx_t = sum_s p_s dstates_s + dlogits_s w_s;  dw_route += dlogits x_t;  db += dlogits
with per-lane partial sums of dw_route and db reduced at the end.
"""

import numpy as np
import torch
from numba import njit, prange

from backends.functions import apply
from backends.numba_cpu._blocks import FAST, acc_tn, dot_nt
from backends.numba_cpu._common import as_array, empty_like, num_threads, optional_array
from backends.numba_cpu.special import fexp
from backends.registry import implements, new_output

TOKENS = 64  # tokens per block: a [64, D] slice of x stays in L2 between its three uses
_NEG_INF = np.float32(-np.inf)


@njit(cache=True)
def _ranks_above(u, v):
    """u ranks above v: larger, and a NaN below every number (as a stable sort of
    -logits puts it); equal values keep their index order."""
    return u > v or (v != v and u == u)


@njit(cache=True)
def _select(logits, k, order):
    """order[:k] = the indices of the k largest logits, largest first (ties: lower index
    first), by insertion into a sorted list of k: one pass, few insertions."""
    filled = 0
    for s in range(logits.shape[0]):
        v = logits[s]
        if filled == k and not _ranks_above(v, logits[order[k - 1]]):
            continue
        pos = filled if filled < k else k - 1
        while pos > 0 and _ranks_above(v, logits[order[pos - 1]]):
            order[pos] = order[pos - 1]
            pos -= 1
        order[pos] = s
        filled = min(k, filled + 1)


@njit(cache=True, fastmath=FAST)
def _softmax_rows(logits, bias, p):
    """p [n, S] = softmax(logits + bias) per row; logits [n, S]. One call per block of
    tokens (a call per token costs as much as its softmax). A NaN logit makes its row
    NaN, as in the reference."""
    n, S = logits.shape
    for tt in range(n):
        m = _NEG_INF
        for s in range(S):
            v = logits[tt, s] + bias[s]
            logits[tt, s] = v
            m = max(m, v)
        total = np.float32(0.0)
        for s in range(S):
            e = fexp(logits[tt, s] - m)
            p[tt, s] = e
            total += e
        inv = np.float32(1.0) / total
        for s in range(S):
            p[tt, s] *= inv


@njit(cache=True, fastmath=FAST)
def _route_top_k(logits, bias, k, order, p):
    """p [S] = the weights of one token under top_k (order[:k] = the kept states)."""
    S = logits.shape[0]
    for s in range(S):
        logits[s] += bias[s]
    _select(logits, k, order)
    p[:] = 0.0
    m = logits[order[0]]
    for j in range(1, k):
        m = max(m, logits[order[j]])
    total = np.float32(0.0)
    for j in range(k):
        e = fexp(logits[order[j]] - m)
        p[order[j]] = e
        total += e
    for j in range(k):
        p[order[j]] /= total


@njit(parallel=True, cache=True, fastmath=FAST)
def _forward(x, w, bias, mask, has_mask, k, sparse, nsplit, weights, states, part):
    """states [B, S, D]; part [B, nsplit, S, D] partial sums when nsplit > 1."""
    B, T, D = x.shape
    S = w.shape[0]
    for item in prange(B * nsplit):
        b, sp = item // nsplit, item % nsplit
        ta, tb = T * sp // nsplit, T * (sp + 1) // nsplit
        acc = states[b] if nsplit == 1 else part[b, sp]  # [S, D]
        acc[:] = 0.0
        logits = np.empty((TOKENS, S), dtype=np.float32)
        order = np.empty(S, dtype=np.int64)
        for t0 in range(ta, tb, TOKENS):
            t1 = min(tb, t0 + TOKENS)
            xb = x[b, t0:t1]  # [n, D]
            lg = logits[: t1 - t0]
            dot_nt(xb, w, lg)
            pb = weights[b, t0:t1]  # [n, S]
            if k >= S:
                _softmax_rows(lg, bias, pb)
            for tt in range(t1 - t0):
                if has_mask and not mask[b, t0 + tt]:
                    pb[tt] = 0.0
                    continue
                if k >= S:
                    continue
                _route_top_k(lg[tt], bias, k, order, pb[tt])
                if sparse:
                    for j in range(k):
                        s = order[j]
                        ps = pb[tt, s]
                        for d in range(D):
                            acc[s, d] += ps * xb[tt, d]
            if not sparse:
                acc_tn(pb, xb, acc)
    if nsplit > 1:
        for b in prange(B):
            for s in range(S):
                for d in range(D):
                    total = np.float32(0.0)
                    for sp in range(nsplit):
                        total += part[b, sp, s, d]
                    states[b, s, d] = total


@njit(parallel=True, cache=True, fastmath=FAST)
def _backward(x, w, weights, g_states, g_weights, sparse, nsplit, lanes, dx, dw_part, db_part):
    """dw_part [lanes, S, D], db_part [lanes, S]: per-lane partial sums (the caller adds)."""
    B, T, D = x.shape
    S = w.shape[0]
    items = B * nsplit
    for lane in prange(lanes):
        dwp = dw_part[lane]  # [S, D]
        dbp = db_part[lane]  # [S]
        dwp[:] = 0.0
        dbp[:] = 0.0
        gp = np.empty((TOKENS, S), dtype=np.float32)
        dl = np.empty((TOKENS, S), dtype=np.float32)
        for item in range(lane, items, lanes):
            b, sp = item // nsplit, item % nsplit
            ta, tb = T * sp // nsplit, T * (sp + 1) // nsplit
            gs = g_states[b]  # [S, D]
            for t0 in range(ta, tb, TOKENS):
                t1 = min(tb, t0 + TOKENS)
                n = t1 - t0
                xb = x[b, t0:t1]  # [n, D]
                pb = weights[b, t0:t1]  # [n, S]
                dxb = dx[b, t0:t1]
                dxb[:] = 0.0
                if sparse:
                    for tt in range(n):
                        dot_sum = np.float32(0.0)
                        for s in range(S):
                            if pb[tt, s] != 0:
                                g = g_weights[b, t0 + tt, s]
                                for d in range(D):
                                    g += gs[s, d] * xb[tt, d]
                                gp[tt, s] = g
                                dot_sum += pb[tt, s] * g
                        for s in range(S):
                            ps = pb[tt, s]
                            if ps != 0:
                                dls = ps * (gp[tt, s] - dot_sum)
                                dbp[s] += dls
                                for d in range(D):
                                    dxb[tt, d] += ps * gs[s, d] + dls * w[s, d]
                                    dwp[s, d] += dls * xb[tt, d]
                    continue
                gpb = gp[:n]
                dlb = dl[:n]
                dot_nt(xb, gs, gpb)
                for tt in range(n):
                    dot_sum = np.float32(0.0)
                    for s in range(S):
                        gpb[tt, s] += g_weights[b, t0 + tt, s]
                        dot_sum += pb[tt, s] * gpb[tt, s]
                    for s in range(S):
                        dlb[tt, s] = pb[tt, s] * (gpb[tt, s] - dot_sum)
                        dbp[s] += dlb[tt, s]
                acc_tn(pb.T, gs, dxb)
                acc_tn(dlb.T, w, dxb)
                acc_tn(dlb, xb, dwp)


class _NsmRoute(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w_route, b_route, mask, top_k):
        B, T, D = x.shape
        S = w_route.shape[0]
        k = S if top_k is None else top_k
        sparse = 4 * k <= S
        P = num_threads()
        nsplit = max(1, -(-P // B))
        bias, _ = optional_array(b_route, (S,))
        mask_arr = as_array(mask) if mask is not None else np.ones((0, 0), dtype=np.bool_)
        weights = new_output((B, T, S), torch.float32, x.device)
        states = new_output((B, S, D), torch.float32, x.device)
        part = np.empty((B, nsplit, S, D) if nsplit > 1 else (0, 0, 0, 0), dtype=np.float32)
        xa, wa = as_array(x), as_array(w_route)
        _forward(xa, wa, bias, mask_arr, mask is not None, k, sparse, nsplit, as_array(weights), as_array(states), part)
        ctx.save_for_backward(x, w_route, weights)
        ctx.sparse, ctx.nsplit, ctx.has_bias = sparse, nsplit, b_route is not None
        return states, weights

    @staticmethod
    def backward(ctx, g_states, g_weights):
        x, w_route, weights = ctx.saved_tensors
        S, D = w_route.shape
        lanes = min(num_threads(), x.shape[0] * ctx.nsplit)
        dx = empty_like(x)
        dw_part = torch.empty((lanes, S, D), dtype=torch.float32)
        db_part = torch.empty((lanes, S), dtype=torch.float32)
        _backward(*[as_array(t) for t in (x, w_route, weights, g_states, g_weights)], ctx.sparse, ctx.nsplit, lanes,
                  as_array(dx), dw_part.numpy(), db_part.numpy())
        db = db_part.sum(0) if ctx.has_bias else None
        return dx, dw_part.sum(0), db, None, None


@implements("nsm_route", dtypes=(torch.float32,))
def nsm_route(x, w_route, b_route=None, mask=None, top_k=None):
    return apply(_NsmRoute, x, w_route, b_route, mask, top_k)
