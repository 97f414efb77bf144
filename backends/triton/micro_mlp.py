"""micro_mlp, Triton: a program owns a block of BLOCK_D units, loads their 112-float
records once into registers, and streams row tiles [BLOCK_N, BLOCK_D] of x through them
(grid-stride over rows, so every program reuses its records many times).

The 7-wide hidden layers are held as a padded axis of 8 (w1, b1, b2, w3 as [BLOCK_D, 8],
W2 as [BLOCK_D, 8, 8]); padding weights load as 0 and act(0) = 0 for every activation,
so the eighth lane contributes nothing.

Backward: the same programs recompute the hidden layers per tile, write dx, and sum
their parameter gradients over the rows they streamed, in registers; each program then
writes its partial sums once to a [P, D, 112] buffer (P row programs), which one
reduction over P turns into dparams: no atomics, one partial record per program.
"""

import torch
import triton
import triton.language as tl

from backends.ops.micro_mlp import ACTIVATIONS, RECORD
from backends.registry import implements, new_output
from backends.triton._common import cdiv, configs, contiguous, sm_count

PROGRAMS_PER_SM = 8  # programs to launch per SM, over units x row partitions
MIN_ROWS = 64  # rows per program at least, so a record load is amortised

# tiles stay small: the W2 product is [BLOCK_N, BLOCK_D, 8, 8] in registers
_FORWARD = configs(dict(BLOCK_N=16, BLOCK_D=8), dict(BLOCK_N=8, BLOCK_D=16), dict(BLOCK_N=32, BLOCK_D=8),
                   dict(BLOCK_N=16, BLOCK_D=16), num_warps=(4, 8), num_stages=(2,),
                   interpreter=dict(BLOCK_N=16, BLOCK_D=8))
_BACKWARD = configs(dict(BLOCK_N=8, BLOCK_D=8), dict(BLOCK_N=16, BLOCK_D=8), dict(BLOCK_N=8, BLOCK_D=16),
                    num_warps=(4, 8), num_stages=(2,), interpreter=dict(BLOCK_N=16, BLOCK_D=8))
_KEY = ["N", "D", "ACT"]


def _row_programs(N, D, block_d, device) -> int:
    """How many programs share the rows of one block of units."""
    return max(1, min(cdiv(N, MIN_ROWS), PROGRAMS_PER_SM * sm_count(device) // cdiv(D, block_d)))


@triton.jit
def _act(z, ACT: tl.constexpr):
    """relu (NaN propagates), sin, or log_relu = log1p(relu)."""
    if ACT == 0:
        r = tl.where(z < 0, 0.0, z)
    elif ACT == 1:
        r = tl.sin(z)
    else:
        r = tl.log(1.0 + tl.where(z < 0, 0.0, z))
    return r


@triton.jit
def _act_grad(z, ACT: tl.constexpr):
    """act'(z); relu and log_relu take 0 at z = 0."""
    if ACT == 0:
        r = tl.where(z > 0, 1.0, 0.0)
    elif ACT == 1:
        r = tl.cos(z)
    else:
        r = tl.where(z > 0, 1.0 / (1.0 + z), 0.0)
    return r


@triton.jit
def _record_offsets(d, dmask):
    """Offsets and masks into [D, 112] records: vectors [BLOCK_D, 8], W2 [BLOCK_D, 8, 8]
    (out j, in i), scalars [BLOCK_D]; the eighth lane is masked."""
    j = tl.arange(0, 8)
    vec = d[:, None] * 112 + j[None, :]
    vmask = dmask[:, None] & (j < 7)[None, :]
    mat = d[:, None, None] * 112 + 14 + 7 * j[None, :, None] + j[None, None, :]
    mmask = vmask[:, :, None] & (j < 7)[None, None, :]
    return vec, vmask, mat, mmask, d * 112


@triton.jit
def _load_record(params, d, dmask):
    """(w1, b1, W2, b2, w3, b3, alpha_h, alpha_out) of units d, float32, padding 0."""
    vec, vmask, mat, mmask, sca = _record_offsets(d, dmask)
    w1 = tl.load(params + vec, mask=vmask, other=0.0).to(tl.float32)
    b1 = tl.load(params + vec + 7, mask=vmask, other=0.0).to(tl.float32)
    W2 = tl.load(params + mat, mask=mmask, other=0.0).to(tl.float32)
    b2 = tl.load(params + vec + 63, mask=vmask, other=0.0).to(tl.float32)
    w3 = tl.load(params + vec + 70, mask=vmask, other=0.0).to(tl.float32)
    b3 = tl.load(params + sca + 77, mask=dmask, other=0.0).to(tl.float32)
    ah = tl.load(params + sca + 78, mask=dmask, other=0.0).to(tl.float32)
    ao = tl.load(params + sca + 79, mask=dmask, other=0.0).to(tl.float32)
    return w1, b1, W2, b2, w3, b3, ah, ao


@triton.jit
def _hidden(u, w1, b1, W2, b2, ah, ACT: tl.constexpr):
    """u [BLOCK_N, BLOCK_D] -> z1, h1, z2, act(z2), h2, each [BLOCK_N, BLOCK_D, 8]."""
    z1 = u[:, :, None] * w1[None, :, :] + b1[None, :, :]
    h1 = _act(z1, ACT)
    z2 = tl.sum(h1[:, :, None, :] * W2[None, :, :, :], axis=3) + b2[None, :, :]
    a2 = _act(z2, ACT)
    return z1, h1, z2, a2, h1 + ah[None, :, None] * a2


@triton.jit
def _rows(N, D, d, dmask, n0, BLOCK_N: tl.constexpr):
    """Offsets [BLOCK_N, BLOCK_D] of rows n0.. of an [N, D] tensor at units d, and mask."""
    n = n0 + tl.arange(0, BLOCK_N)
    return n[:, None].to(tl.int64) * D + d[None, :], (n < N)[:, None] & dmask[None, :]


@triton.autotune(configs=_FORWARD, key=_KEY)
@triton.jit
def _forward(x, params, y, N, D, ACT: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    d = tl.program_id(0) * BLOCK_D + tl.arange(0, BLOCK_D)
    dmask = d < D
    w1, b1, W2, b2, w3, b3, ah, ao = _load_record(params, d, dmask)
    for n0 in range(tl.program_id(1) * BLOCK_N, N, tl.num_programs(1) * BLOCK_N):
        off, m = _rows(N, D, d, dmask, n0, BLOCK_N)
        u = tl.load(x + off, mask=m, other=0.0).to(tl.float32)
        _, _, _, _, h2 = _hidden(u, w1, b1, W2, b2, ah, ACT)
        out = u + ao[None, :] * (tl.sum(h2 * w3[None, :, :], axis=2) + b3[None, :])
        tl.store(y + off, out.to(y.dtype.element_ty), mask=m)


@triton.autotune(configs=_BACKWARD, key=_KEY)
@triton.jit
def _backward(x, params, dy, dx, partial, N, D, ACT: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    d = tl.program_id(0) * BLOCK_D + tl.arange(0, BLOCK_D)
    dmask = d < D
    w1, b1, W2, b2, w3, b3, ah, ao = _load_record(params, d, dmask)
    # parameter gradients summed over this program's rows; [BLOCK_D, 8], [BLOCK_D, 8, 8], [BLOCK_D]
    g_w1 = tl.zeros([BLOCK_D, 8], dtype=tl.float32)
    g_b1 = tl.zeros([BLOCK_D, 8], dtype=tl.float32)
    g_W2 = tl.zeros([BLOCK_D, 8, 8], dtype=tl.float32)
    g_b2 = tl.zeros([BLOCK_D, 8], dtype=tl.float32)
    g_w3 = tl.zeros([BLOCK_D, 8], dtype=tl.float32)
    g_b3 = tl.zeros([BLOCK_D], dtype=tl.float32)
    g_ah = tl.zeros([BLOCK_D], dtype=tl.float32)
    g_ao = tl.zeros([BLOCK_D], dtype=tl.float32)
    for n0 in range(tl.program_id(1) * BLOCK_N, N, tl.num_programs(1) * BLOCK_N):
        off, m = _rows(N, D, d, dmask, n0, BLOCK_N)
        u = tl.load(x + off, mask=m, other=0.0).to(tl.float32)  # [BLOCK_N, BLOCK_D]
        g = tl.load(dy + off, mask=m, other=0.0).to(tl.float32)  # padding rows: g = 0, no contribution
        z1, h1, z2, a2, h2 = _hidden(u, w1, b1, W2, b2, ah, ACT)
        s = tl.sum(h2 * w3[None, :, :], axis=2) + b3[None, :]  # w3 . h2 + b3
        g_ao += tl.sum(g * s, axis=0)
        go = g * ao[None, :]  # dL/ds
        g_b3 += tl.sum(go, axis=0)
        g_w3 += tl.sum(go[:, :, None] * h2, axis=0)
        dh2 = go[:, :, None] * w3[None, :, :]
        g_ah += tl.sum(tl.sum(dh2 * a2, axis=2), axis=0)
        dz2 = dh2 * ah[None, :, None] * _act_grad(z2, ACT)
        g_b2 += tl.sum(dz2, axis=0)
        g_W2 += tl.sum(dz2[:, :, :, None] * h1[:, :, None, :], axis=0)
        dz1 = (dh2 + tl.sum(dz2[:, :, :, None] * W2[None, :, :, :], axis=2)) * _act_grad(z1, ACT)
        g_b1 += tl.sum(dz1, axis=0)
        g_w1 += tl.sum(dz1 * u[:, :, None], axis=0)
        tl.store(dx + off, (g + tl.sum(dz1 * w1[None, :, :], axis=2)).to(dx.dtype.element_ty), mask=m)
    vec, vmask, mat, mmask, sca = _record_offsets(d, dmask)
    part = partial + tl.program_id(1).to(tl.int64) * D * 112
    tl.store(part + vec, g_w1, mask=vmask)
    tl.store(part + vec + 7, g_b1, mask=vmask)
    tl.store(part + mat, g_W2, mask=mmask)
    tl.store(part + vec + 63, g_b2, mask=vmask)
    tl.store(part + vec + 70, g_w3, mask=vmask)
    tl.store(part + sca + 77, g_b3, mask=dmask)
    tl.store(part + sca + 78, g_ah, mask=dmask)
    tl.store(part + sca + 79, g_ao, mask=dmask)


class _MicroMLP(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, params, activation):
        D = x.shape[-1]
        x2, params = contiguous(x.reshape(-1, D), params)  # [N, D], [D, 112]
        N = x2.shape[0]
        act = ACTIVATIONS.index(activation)
        y = new_output(x.shape, x.dtype, x.device)
        if N and D:
            grid = lambda meta: (cdiv(D, meta["BLOCK_D"]), _row_programs(N, D, meta["BLOCK_D"], x.device))
            _forward[grid](x2, params, y, N, D, ACT=act)
        ctx.save_for_backward(x2, params)
        ctx.act, ctx.shape = act, x.shape
        return y

    @staticmethod
    def backward(ctx, dy):
        x2, params = ctx.saved_tensors
        N, D = x2.shape
        (dy,) = contiguous(dy.reshape(N, D))
        dx = torch.empty_like(x2)
        # P row programs, fixed before autotuning picks BLOCK_D (it sizes the buffer);
        # the padding [80:112] is never written and stays 0
        P = _row_programs(N, D, 16, x2.device)
        partial = torch.zeros((P, D, RECORD), dtype=torch.float32, device=x2.device)
        if N and D:
            _backward[lambda meta: (cdiv(D, meta["BLOCK_D"]), P)](x2, params, dy, dx, partial, N, D, ACT=ctx.act)
        return dx.reshape(ctx.shape), partial.sum(0).to(params.dtype), None


@implements("micro_mlp", dtypes=(torch.float32, torch.bfloat16))
def micro_mlp(x, params, activation="relu"):
    return _MicroMLP.apply(x, params, activation)
