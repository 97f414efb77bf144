"""stack_step, Numba CPU: one fused pass over the [B, K, D] slots.

Forward and backward run in parallel over the B * K slot rows; each row reads its own
slot and its two neighbours (cache-hot, since a thread walks consecutive rows), so the
values move through memory once. The backward's gradient of the actions is reduced
over K per row first ([B, K, 3] partial sums), then over the slots of each batch row.
"""

import numpy as np
import torch
from numba import njit, prange

from backends.functions import apply
from backends.numba_cpu._blocks import FAST
from backends.numba_cpu._common import as_array, empty_like
from backends.registry import implements, new_output


@njit(parallel=True, cache=True)
def _forward(values, mass, actions, push, out_v, out_m, pop_v, pop_m):
    B, K, D = values.shape
    for r in prange(B * K):
        b, k = r // K, r % K
        p, n, q = actions[b, 0], actions[b, 1], actions[b, 2]
        above = push[b] if k == 0 else values[b, k - 1]  # [D]
        m_above = np.float32(1.0) if k == 0 else mass[b, k - 1]
        if k + 1 < K:
            below = values[b, k + 1]
            for d in range(D):
                out_v[b, k, d] = p * above[d] + n * values[b, k, d] + q * below[d]
            m_below = mass[b, k + 1]
        else:
            for d in range(D):
                out_v[b, k, d] = p * above[d] + n * values[b, k, d]
            m_below = np.float32(0.0)
        out_m[b, k] = p * m_above + n * mass[b, k] + q * m_below
        if k == 0:
            for d in range(D):
                pop_v[b, d] = q * values[b, 0, d]
            pop_m[b] = q * mass[b, 0]


@njit(parallel=True, cache=True, fastmath=FAST)
def _backward(values, mass, actions, push, g_v, g_m, g_pv, g_pm, d_v, d_m, d_push, d_act):
    """d_v[k] = n g_v[k] + p g_v[k+1] + q g_v[k-1] (+ q g_pv at k = 0), mass alike;
    d_act[b] = sums over slots of g_v[k] . (above, V_k, below) (+ the mass terms)."""
    B, K, D = values.shape
    part = np.empty((B, K, 3), dtype=np.float32)  # per-row partial sums of d_act
    for r in prange(B * K):
        b, k = r // K, r % K
        p, n, q = actions[b, 0], actions[b, 1], actions[b, 2]
        g = g_v[b, k]  # [D]
        above = push[b] if k == 0 else values[b, k - 1]
        from_above = g_pv[b] if k == 0 else g_v[b, k - 1]  # the row a pop moves slot k into
        sp = np.float32(0.0)
        sn = np.float32(0.0)
        sq = np.float32(0.0)
        if k + 1 < K:
            below = values[b, k + 1]
            g_below = g_v[b, k + 1]
            for d in range(D):
                d_v[b, k, d] = n * g[d] + p * g_below[d] + q * from_above[d]
                sp += g[d] * above[d]
                sn += g[d] * values[b, k, d]
                sq += g[d] * below[d]
        else:
            for d in range(D):
                d_v[b, k, d] = n * g[d] + q * from_above[d]
                sp += g[d] * above[d]
                sn += g[d] * values[b, k, d]
        gm = g_m[b, k]
        m_above = np.float32(1.0) if k == 0 else mass[b, k - 1]
        gm_from_above = g_pm[b] if k == 0 else g_m[b, k - 1]
        gm_below = g_m[b, k + 1] if k + 1 < K else np.float32(0.0)
        d_m[b, k] = n * gm + p * gm_below + q * gm_from_above
        sp += gm * m_above
        sn += gm * mass[b, k]
        if k + 1 < K:
            sq += gm * mass[b, k + 1]
        if k == 0:
            for d in range(D):
                d_push[b, d] = p * g[d]
                sq += g_pv[b, d] * values[b, 0, d]
            sq += g_pm[b] * mass[b, 0]
        part[b, k, 0] = sp
        part[b, k, 1] = sn
        part[b, k, 2] = sq
    for b in prange(B):
        for j in range(3):
            s = np.float32(0.0)
            for k in range(K):
                s += part[b, k, j]
            d_act[b, j] = s


class _StackStep(torch.autograd.Function):
    @staticmethod
    def forward(ctx, values, mass, actions, push_value):
        B, K, D = values.shape
        arrays = [as_array(t) for t in (values, mass, actions, push_value)]
        outs = [new_output(s, torch.float32, values.device) for s in ((B, K, D), (B, K), (B, D), (B,))]
        _forward(*arrays, *[as_array(t) for t in outs])
        ctx.save_for_backward(values, mass, actions, push_value)
        return tuple(outs)

    @staticmethod
    def backward(ctx, g_v, g_m, g_pv, g_pm):
        values, mass, actions, push_value = ctx.saved_tensors
        grads = [empty_like(t) for t in (values, mass, push_value, actions)]
        _backward(*[as_array(t) for t in (values, mass, actions, push_value, g_v, g_m, g_pv, g_pm)],
                  *[as_array(t) for t in grads])
        d_v, d_m, d_push, d_act = grads
        return d_v, d_m, d_act, d_push


@implements("stack_step", dtypes=(torch.float32,))
def stack_step(values, mass, actions, push_value):
    return apply(_StackStep, values, mass, actions, push_value)
