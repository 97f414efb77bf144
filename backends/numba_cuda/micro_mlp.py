"""micro_mlp, Numba CUDA: one thread per element of x viewed as [R, D], reading its
unit's 112-float record from global memory (the D records, 448 bytes each, stay in L1/L2
while a block's threads walk them). The 7-wide hidden layers live in local arrays.

Backward: a block handles one unit d and a slab of rows; each thread recomputes the
forward of its elements, writes dx and accumulates its 80 parameter gradients in local
memory; the block sums them in shared memory (80 x BLOCK floats, a tree) into one
partial per (slab, unit), and a second kernel sums the slabs. No atomics.
Per element, with g = dy, o = w3 . h2 + b3 and a2 = act(z2):
    d alpha_out = g o;  do = g alpha_out;  d b3 = do;  d w3 = do h2;  dh2 = do w3
    d alpha_h = dh2 . a2;  dz2 = dh2 alpha_h act'(z2);  d b2 = dz2;  d W2 = outer(dz2, h1)
    dh1 = dh2 + W2^T dz2;  dz1 = dh1 act'(z1);  d b1 = dz1;  d w1 = dz1 u;  dx = g + dz1 . w1
"""

import math

import torch
from numba import cuda, float32

from backends.numba_cuda._common import (BLOCK, ONE, ZERO, block_sum, blocks, contiguous, launch, output,
                                         sum_leading)
from backends.ops.micro_mlp import ACTIVATIONS, HIDDEN, LAYOUT, RECORD
from backends.registry import implements

W1, B1, W2, B2 = LAYOUT["w1"].start, LAYOUT["b1"].start, LAYOUT["W2"].start, LAYOUT["b2"].start
W3, B3, ALPHA_H, ALPHA_OUT = LAYOUT["w3"].start, LAYOUT["b3"].start, LAYOUT["alpha_h"].start, LAYOUT["alpha_out"].start
USED = LAYOUT["padding"].start  # parameters before the padding: 80
MAX_SLABS = 32  # row slabs per unit in the backward: partial sums stay small, blocks many


@cuda.jit(device=True)
def _act(z, kind):
    """relu (0), sin (1), log_relu (2); relu passes NaN through, as torch.relu does."""
    if kind == 0:
        return ZERO if z < 0 else z
    if kind == 1:
        return math.sin(z)
    return math.log1p(z) if z > 0 else ZERO


@cuda.jit(device=True)
def _act_grad(z, kind):
    """The activation's derivative (relu and log_relu: 0 at and below 0)."""
    if kind == 1:
        return math.cos(z)
    if z > 0:
        return ONE if kind == 0 else ONE / (ONE + z)
    return ZERO


@cuda.jit(device=True)
def _hidden(params, d, u, kind, z1, h1, z2):
    """Fill z1, h1 = act(z1) and z2 (pre-activations of layer 2) for input u of unit d;
    return o = w3 . h2 + b3."""
    for i in range(HIDDEN):
        z1[i] = params[d, W1 + i] * u + params[d, B1 + i]
        h1[i] = _act(z1[i], kind)
    alpha_h = params[d, ALPHA_H]
    o = params[d, B3]
    for j in range(HIDDEN):
        z = params[d, B2 + j]
        for i in range(HIDDEN):
            z += params[d, W2 + HIDDEN * j + i] * h1[i]
        z2[j] = z
        o += params[d, W3 + j] * (h1[j] + alpha_h * _act(z, kind))
    return o


@cuda.jit(cache=True)
def _forward(x, params, kind, y):
    # x, y: [R, D]; params: [D, RECORD]
    R, D = x.shape
    idx = cuda.grid(1)
    if idx >= R * D:
        return
    r, d = idx // D, idx % D
    z1 = cuda.local.array(HIDDEN, float32)
    h1 = cuda.local.array(HIDDEN, float32)
    z2 = cuda.local.array(HIDDEN, float32)
    u = x[r, d]
    y[r, d] = u + params[d, ALPHA_OUT] * _hidden(params, d, u, kind, z1, h1, z2)


@cuda.jit(cache=True)
def _backward(x, params, kind, dy, dx, partial):
    # grid (D, slabs); x, dy, dx: [R, D]; partial: [slabs, D, RECORD] (padding written 0)
    R, D = x.shape
    d, slab, tid = cuda.blockIdx.x, cuda.blockIdx.y, cuda.threadIdx.x
    z1 = cuda.local.array(HIDDEN, float32)
    h1 = cuda.local.array(HIDDEN, float32)
    z2 = cuda.local.array(HIDDEN, float32)
    dz2 = cuda.local.array(HIDDEN, float32)
    acc = cuda.local.array(USED, float32)
    for p in range(USED):
        acc[p] = ZERO
    alpha_h, alpha_out = params[d, ALPHA_H], params[d, ALPHA_OUT]
    for r in range(slab * BLOCK + tid, R, cuda.gridDim.y * BLOCK):
        u, g = x[r, d], dy[r, d]
        o = _hidden(params, d, u, kind, z1, h1, z2)
        acc[ALPHA_OUT] += g * o
        do = g * alpha_out
        acc[B3] += do
        for j in range(HIDDEN):
            a2 = _act(z2[j], kind)
            dh2 = do * params[d, W3 + j]
            acc[W3 + j] += do * (h1[j] + alpha_h * a2)
            acc[ALPHA_H] += dh2 * a2
            dz2[j] = dh2 * alpha_h * _act_grad(z2[j], kind)
            acc[B2 + j] += dz2[j]
            for i in range(HIDDEN):
                acc[W2 + HIDDEN * j + i] += dz2[j] * h1[i]
        du = g
        for i in range(HIDDEN):
            dh1 = do * params[d, W3 + i]  # dh2_i: h2 = h1 + ...
            for j in range(HIDDEN):
                dh1 += params[d, W2 + HIDDEN * j + i] * dz2[j]
            dz1 = dh1 * _act_grad(z1[i], kind)
            acc[B1 + i] += dz1
            acc[W1 + i] += dz1 * u
            du += dz1 * params[d, W1 + i]
        dx[r, d] = du
    part = cuda.shared.array((USED, BLOCK), float32)
    for p in range(USED):
        part[p, tid] = acc[p]
    block_sum(part, tid)
    for p in range(tid, RECORD, BLOCK):
        partial[slab, d, p] = part[p, 0] if p < USED else ZERO


class _MicroMLP(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, params, kind):
        x, params = contiguous(x, params)
        D = params.shape[0]
        x2 = x.view(-1, D)  # [R, D]
        y = output(x.shape, x)
        launch(_forward, blocks(x2.numel()), BLOCK, x2, params, kind, y.view(-1, D))
        ctx.save_for_backward(x2, params)
        ctx.kind = kind
        return y

    @staticmethod
    def backward(ctx, dy):
        x2, params = ctx.saved_tensors
        R, D = x2.shape
        dy2 = dy.contiguous().view(R, D)
        dx = output((R, D), x2)
        slabs = min(blocks(R), MAX_SLABS)
        partial = output((slabs, D, RECORD), x2)
        launch(_backward, (D, slabs), BLOCK, x2, params, ctx.kind, dy2, dx, partial)
        return dx.view(dy.shape), sum_leading(partial), None


@implements("micro_mlp", dtypes=(torch.float32,))
def micro_mlp(x, params, activation="relu"):
    return _MicroMLP.apply(x, params, ACTIVATIONS.index(activation))
