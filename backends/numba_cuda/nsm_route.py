"""nsm_route, Numba CUDA.

Forward:
- one thread per token (b, t) computes its S logits into its row of ``weights`` (the
  row serves as scratch), drops all but the top k (rank of s = logits above it, plus equal
  logits at a lower index; a dropped entry is overwritten with -inf, which cannot change
  the rank of a kept one, since everything ranked above a kept entry is kept), then
  takes the softmax in place: exp(-inf) is an exact 0. Masked tokens get a zero row.
- states[b, s, d] = sum_t weights[b, t, s] x[b, t, d]: one thread per (b, s, d), a loop
  over t; consecutive threads read consecutive d.
Backward, with gw = dweights + dstates . x (the full gradient of the weights):
- one thread per token: dlogits = w * (gw - w . gw) (the softmax backward; dropped and
  masked entries have w = 0, so the top-k mask needs no storage);
- one thread per (b, t, d): dx = sum_s w dstates[b, s] + sum_s dlogits w_route[s];
- dw_route[s, d] = sum_{b,t} dlogits x, and db_route[s] = sum_{b,t} dlogits as column D of
  the same kernel (x extended by a column of ones): one thread per (s, d) per slab of
  tokens, then a sum over the slabs.
"""

import math

import numpy as np
import torch
from numba import cuda

from backends.numba_cuda._common import BLOCK, ONE, ZERO, blocks, contiguous, launch, optional, output, sum_leading
from backends.registry import implements

NEG_INF = np.float32(-np.inf)
MAX_SLABS = 32  # token slabs of the parameter gradient: parallelism over tokens, few partials


@cuda.jit(cache=True)
def _route(x, w, bias, has_bias, mask, has_mask, top_k, weights):
    # x: [B, T, D]; w: [S, D]; bias: [S]; mask: [B, T] uint8; weights: [B, T, S]
    B, T, D = x.shape
    S = w.shape[0]
    idx = cuda.grid(1)
    if idx >= B * T:
        return
    b, t = idx // T, idx % T
    if has_mask and mask[b, t] == 0:
        for s in range(S):
            weights[b, t, s] = ZERO
        return
    for s in range(S):
        logit = bias[s] if has_bias else ZERO
        for d in range(D):
            logit += w[s, d] * x[b, t, d]
        weights[b, t, s] = logit
    if top_k < S:
        for s in range(S):
            ls = weights[b, t, s]
            rank = 0
            for j in range(S):
                lj = weights[b, t, j]
                if lj > ls or (lj == ls and j < s):
                    rank += 1
            if rank >= top_k:
                weights[b, t, s] = NEG_INF
    m = NEG_INF
    for s in range(S):
        v = weights[b, t, s]
        m = v if v > m else m  # max(m, v), written out (numba 0.68's CUDA max fails to compile)
    total = ZERO
    for s in range(S):
        total += math.exp(weights[b, t, s] - m)
    for s in range(S):
        weights[b, t, s] = math.exp(weights[b, t, s] - m) / total


@cuda.jit(cache=True)
def _states(x, weights, states):
    # states[b, s, d] = sum_t weights[b, t, s] x[b, t, d]; states: [B, S, D]
    B, S, D = states.shape
    T = x.shape[1]
    idx = cuda.grid(1)
    if idx >= B * S * D:
        return
    b, s, d = idx // (S * D), (idx // D) % S, idx % D
    acc = ZERO
    for t in range(T):
        acc += weights[b, t, s] * x[b, t, d]
    states[b, s, d] = acc


@cuda.jit(cache=True)
def _backward_logits(x, weights, d_states, d_weights, d_logits):
    # d_logits: [B, T, S]; its row first holds gw, then w * (gw - w . gw)
    B, T, D = x.shape
    S = weights.shape[2]
    idx = cuda.grid(1)
    if idx >= B * T:
        return
    b, t = idx // T, idx % T
    dot = ZERO
    for s in range(S):
        gw = d_weights[b, t, s]
        for d in range(D):
            gw += d_states[b, s, d] * x[b, t, d]
        d_logits[b, t, s] = gw
        dot += weights[b, t, s] * gw
    for s in range(S):
        d_logits[b, t, s] = weights[b, t, s] * (d_logits[b, t, s] - dot)


@cuda.jit(cache=True)
def _backward_x(w, weights, d_states, d_logits, dx):
    # dx: [B, T, D]
    B, T, D = dx.shape
    S = w.shape[0]
    idx = cuda.grid(1)
    if idx >= B * T * D:
        return
    b, t, d = idx // (T * D), (idx // D) % T, idx % D
    acc = ZERO
    for s in range(S):
        acc += weights[b, t, s] * d_states[b, s, d] + d_logits[b, t, s] * w[s, d]
    dx[b, t, d] = acc


@cuda.jit(cache=True)
def _backward_params(x, d_logits, partial):
    # grid (blocks over S * (D + 1), slabs); partial: [slabs, S, D + 1], column D = bias
    B, T, D = x.shape
    S = d_logits.shape[2]
    idx = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    if idx >= S * (D + 1):
        return
    s, d = idx // (D + 1), idx % (D + 1)
    slab, slabs = cuda.blockIdx.y, cuda.gridDim.y
    per = (B * T + slabs - 1) // slabs
    acc = ZERO
    end = (slab + 1) * per
    end = B * T if B * T < end else end  # min(end, B * T), written out (numba 0.68's CUDA min fails to compile)
    for token in range(slab * per, end):
        b, t = token // T, token % T
        acc += d_logits[b, t, s] * (x[b, t, d] if d < D else ONE)
    partial[slab, s, d] = acc


class _Route(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w_route, b_route, mask, top_k):
        x, w_route = contiguous(x, w_route)
        bias, has_bias = optional(b_route, x, 1)
        mask_arr, has_mask = optional(None if mask is None else mask.to(torch.uint8), x, 2)
        (B, T, D), S = x.shape, w_route.shape[0]
        weights, states = output((B, T, S), x), output((B, S, D), x)
        launch(_route, blocks(B * T), BLOCK, x, w_route, bias, has_bias, mask_arr, has_mask, top_k, weights)
        launch(_states, blocks(B * S * D), BLOCK, x, weights, states)
        ctx.save_for_backward(x, w_route, weights)
        ctx.has_bias = has_bias
        return states, weights

    @staticmethod
    def backward(ctx, d_states, d_weights):
        x, w_route, weights = ctx.saved_tensors
        d_states, d_weights = contiguous(d_states, d_weights)
        (B, T, D), S = x.shape, w_route.shape[0]
        d_logits, dx = output((B, T, S), x), output((B, T, D), x)
        launch(_backward_logits, blocks(B * T), BLOCK, x, weights, d_states, d_weights, d_logits)
        launch(_backward_x, blocks(B * T * D), BLOCK, w_route, weights, d_states, d_logits, dx)
        slabs = min(max(B * T, 1), MAX_SLABS)
        partial = output((slabs, S, D + 1), x)
        launch(_backward_params, (blocks(S * (D + 1)), slabs), BLOCK, x, d_logits, partial)
        d_params = sum_leading(partial)  # [S, D + 1]
        return dx, d_params[:, :D], (d_params[:, D] if ctx.has_bias else None), None, None


@implements("nsm_route", dtypes=(torch.float32,))
def nsm_route(x, w_route, b_route=None, mask=None, top_k=None):
    return _Route.apply(x, w_route, b_route, mask, w_route.shape[0] if top_k is None else top_k)
