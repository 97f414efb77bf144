"""stack_step, Numba CUDA: one thread per element of the extended stack [B, K, D + 1],
whose column D is the mass: values and mass obey the same update, so one kernel does
both. Reading through ``_slot``, row -1 is what a push brings (push_value, mass 1) and
row K is empty (zeros):
    new[k] = p slot(k-1) + n slot(k) + q slot(k+1),   popped = q slot(0)

Backward, reading the output gradients through ``_grad`` (row -1 is the popped output's
gradient, row K is zero): an input slot j feeds new[j+1] (p), new[j] (n) and new[j-1] (q),
    d slot(j) = p g(j+1) + n g(j) + q g(j-1),   d push_value = p g(0).
The actions' gradient is a sum over the whole extended stack of batch row b,
    dp = sum g(k) slot(k-1),  dn = sum g(k) slot(k),  dq = sum_{k >= -1} g(k) slot(k+1),
reduced by one block per b (threads stride over the elements, then a shared-memory tree).
"""

import torch
from numba import cuda, float32

from backends.numba_cuda._common import BLOCK, ONE, ZERO, block_sum, blocks, contiguous, launch, output
from backends.registry import implements


@cuda.jit(device=True)
def _slot(values, mass, push, b, k, d):
    """Row k (-1 = the pushed value, K = empty) of the extended stack, column d (D = mass)."""
    K, D = values.shape[1], values.shape[2]
    if k >= K:
        return ZERO
    if k < 0:
        return push[b, d] if d < D else ONE
    return values[b, k, d] if d < D else mass[b, k]


@cuda.jit(device=True)
def _grad(g_v, g_m, g_pv, g_pm, b, k, d):
    """Gradient of output row k (-1 = popped, K = none), column d (D = mass)."""
    K, D = g_v.shape[1], g_v.shape[2]
    if k >= K:
        return ZERO
    if k < 0:
        return g_pv[b, d] if d < D else g_pm[b]
    return g_v[b, k, d] if d < D else g_m[b, k]


@cuda.jit(device=True)
def _position(idx, K, D):
    """Thread index -> (b, k, d) in the extended stack [B, K, D + 1]."""
    b, r = idx // (K * (D + 1)), idx % (K * (D + 1))
    return b, r // (D + 1), r % (D + 1)


@cuda.jit(cache=True)
def _forward(values, mass, actions, push, out_v, out_m, pop_v, pop_m):
    # values, out_v: [B, K, D]; mass, out_m: [B, K]; actions: [B, 3]; push, pop_v: [B, D]; pop_m: [B]
    B, K, D = values.shape
    idx = cuda.grid(1)
    if idx >= B * K * (D + 1):
        return
    b, k, d = _position(idx, K, D)
    p, n, q = actions[b, 0], actions[b, 1], actions[b, 2]
    new = (p * _slot(values, mass, push, b, k - 1, d) + n * _slot(values, mass, push, b, k, d)
           + q * _slot(values, mass, push, b, k + 1, d))
    if d < D:
        out_v[b, k, d] = new
    else:
        out_m[b, k] = new
    if k == 0:
        popped = q * _slot(values, mass, push, b, 0, d)
        if d < D:
            pop_v[b, d] = popped
        else:
            pop_m[b] = popped


@cuda.jit(cache=True)
def _backward_slots(actions, g_v, g_m, g_pv, g_pm, d_v, d_m, d_push):
    # gradients shaped like the forward's arguments and outputs
    B, K, D = g_v.shape
    idx = cuda.grid(1)
    if idx >= B * K * (D + 1):
        return
    b, k, d = _position(idx, K, D)
    p, n, q = actions[b, 0], actions[b, 1], actions[b, 2]
    grad = (p * _grad(g_v, g_m, g_pv, g_pm, b, k + 1, d) + n * _grad(g_v, g_m, g_pv, g_pm, b, k, d)
            + q * _grad(g_v, g_m, g_pv, g_pm, b, k - 1, d))
    if d < D:
        d_v[b, k, d] = grad
        if k == 0:
            d_push[b, d] = p * _grad(g_v, g_m, g_pv, g_pm, b, 0, d)
    else:
        d_m[b, k] = grad


@cuda.jit(cache=True)
def _backward_actions(values, mass, push, g_v, g_m, g_pv, g_pm, d_act):
    # one block per batch row b; d_act: [B, 3]
    B, K, D = values.shape
    b, tid = cuda.blockIdx.x, cuda.threadIdx.x
    part = cuda.shared.array((3, BLOCK), float32)
    sp, sn, sq = ZERO, ZERO, ZERO
    for e in range(tid, (K + 1) * (D + 1), BLOCK):
        k, d = e // (D + 1) - 1, e % (D + 1)  # rows -1 (popped) .. K-1
        g = _grad(g_v, g_m, g_pv, g_pm, b, k, d)
        sq += g * _slot(values, mass, push, b, k + 1, d)
        if k >= 0:
            sp += g * _slot(values, mass, push, b, k - 1, d)
            sn += g * _slot(values, mass, push, b, k, d)
    part[0, tid] = sp
    part[1, tid] = sn
    part[2, tid] = sq
    block_sum(part, tid)
    if tid < 3:
        d_act[b, tid] = part[tid, 0]


class _StackStep(torch.autograd.Function):
    @staticmethod
    def forward(ctx, values, mass, actions, push):
        values, mass, actions, push = contiguous(values, mass, actions, push)
        B, K, D = values.shape
        out_v, out_m = output((B, K, D), values), output((B, K), values)
        pop_v, pop_m = output((B, D), values), output((B,), values)
        launch(_forward, blocks(B * K * (D + 1)), BLOCK, values, mass, actions, push, out_v, out_m, pop_v, pop_m)
        ctx.save_for_backward(values, mass, actions, push)
        return out_v, out_m, pop_v, pop_m

    @staticmethod
    def backward(ctx, g_v, g_m, g_pv, g_pm):
        values, mass, actions, push = ctx.saved_tensors
        g_v, g_m, g_pv, g_pm = contiguous(g_v, g_m, g_pv, g_pm)
        B, K, D = values.shape
        d_v, d_m = output((B, K, D), values), output((B, K), values)
        d_push, d_act = output((B, D), values), output((B, 3), values)
        launch(_backward_slots, blocks(B * K * (D + 1)), BLOCK, actions, g_v, g_m, g_pv, g_pm, d_v, d_m, d_push)
        launch(_backward_actions, B, BLOCK, values, mass, push, g_v, g_m, g_pv, g_pm, d_act)
        return d_v, d_m, d_act, d_push


@implements("stack_step", dtypes=(torch.float32,))
def stack_step(values, mass, actions, push_value):
    return _StackStep.apply(values, mass, actions, push_value)
