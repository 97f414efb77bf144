"""micro_mlp, Triton: a program owns a block of BLOCK_D units and streams the rows of
x through them (grid-stride over rows, so each program reuses its records many times).

Layout: a program's tile is ROWS x BLOCK_D elements flattened into one element axis E
(e = r * BLOCK_D + unit, so a row's units are adjacent in memory). E is the last axis of
every tensor and is sized to the program's threads (32 * num_warps): each thread then
holds one element and its unit's record in registers, w1, b1, b2, w3 as [8, E] and W2
as [8, 8, E], and the 7 -> 7 layer reduces within the thread (no shuffles). For that the
records are read transposed, [112, D] (one copy per call, the private layout the
contract allows): a field of adjacent units is then contiguous, and Triton lays the
loads, and so the whole computation, out with the element axis across threads (with
[D, 112] it put the hidden axis across threads and reduced by shuffles). The 7-wide
hidden layers are padded to 8: padding weights load as 0 (masked, so the compiler
drops their products) and act(0) = 0 for every activation, so the eighth lane
contributes nothing.

Backward: the same programs recompute the hidden layers per tile, write dx, and sum
their parameter gradients per thread over the rows they streamed; at the end each
program folds its ROWS element slots per unit and writes one partial record per unit
to a [P, 112, D] buffer (P row programs), which one reduction over P turns into
dparams: no atomics.
"""

import torch
import triton
import triton.language as tl

from backends.ops.micro_mlp import ACTIVATIONS, RECORD
from backends.registry import implements, new_output
from backends.triton._common import cdiv, configs, contiguous, sm_count

PROGRAMS_PER_SM = 8  # programs to launch per SM, over units x row partitions
MIN_ROWS = 64  # rows per program at least, so a record load is amortised
UNITS = 16  # the unit block that sizes the backward's partial buffer (see _row_programs)

# ROWS * BLOCK_D = 32 * num_warps: one element per thread
_FORWARD = configs(dict(BLOCK_D=16, ROWS=8, num_warps=4), dict(BLOCK_D=32, ROWS=4, num_warps=4),
                   dict(BLOCK_D=8, ROWS=16, num_warps=4), dict(BLOCK_D=32, ROWS=8, num_warps=8),
                   dict(BLOCK_D=16, ROWS=4, num_warps=2), num_stages=(2,),
                   interpreter=dict(BLOCK_D=8, ROWS=8))
_BACKWARD = configs(dict(BLOCK_D=16, ROWS=8, num_warps=4), dict(BLOCK_D=32, ROWS=4, num_warps=4),
                    dict(BLOCK_D=16, ROWS=4, num_warps=2), num_stages=(2,), interpreter=dict(BLOCK_D=8, ROWS=8))
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
def _record_offsets(d, dmask, D):
    """Offsets and masks into the transposed records [112, D] (field f of unit d at
    f * D + d) for units d [M], the last axis: vectors [8, M], W2 [8 (out j), 8 (in i),
    M]; the eighth lane is masked. Add f * D for the field's start."""
    j = tl.arange(0, 8)
    vec = j[:, None] * D + d[None, :]
    vmask = (j < 7)[:, None] & dmask[None, :]
    mat = (7 * j[:, None, None] + j[None, :, None]) * D + d[None, None, :]
    mmask = (j < 7)[:, None, None] & vmask[None, :, :]
    return vec, vmask, mat, mmask


@triton.jit
def _load_record(records, d, dmask, D):
    """(w1, b1, W2, b2, w3, b3, alpha_h, alpha_out) of units d from the transposed
    records [112, D], float32, padding 0."""
    vec, vmask, mat, mmask = _record_offsets(d, dmask, D)
    w1 = tl.load(records + vec, mask=vmask, other=0.0).to(tl.float32)
    b1 = tl.load(records + 7 * D + vec, mask=vmask, other=0.0).to(tl.float32)
    W2 = tl.load(records + 14 * D + mat, mask=mmask, other=0.0).to(tl.float32)
    b2 = tl.load(records + 63 * D + vec, mask=vmask, other=0.0).to(tl.float32)
    w3 = tl.load(records + 70 * D + vec, mask=vmask, other=0.0).to(tl.float32)
    b3 = tl.load(records + 77 * D + d, mask=dmask, other=0.0).to(tl.float32)
    ah = tl.load(records + 78 * D + d, mask=dmask, other=0.0).to(tl.float32)
    ao = tl.load(records + 79 * D + d, mask=dmask, other=0.0).to(tl.float32)
    return w1, b1, W2, b2, w3, b3, ah, ao


@triton.jit
def _hidden(u, w1, b1, W2, b2, ah, ACT: tl.constexpr):
    """u [E] -> z1, h1, z2, act(z2), h2, each [8, E]."""
    z1 = w1 * u[None, :] + b1
    h1 = _act(z1, ACT)
    z2 = tl.sum(W2 * h1[None, :, :], axis=1) + b2
    a2 = _act(z2, ACT)
    return z1, h1, z2, a2, h1 + ah[None, :] * a2


@triton.jit
def _elements(D, BLOCK_D: tl.constexpr, ROWS: tl.constexpr):
    """This program's element slots: (row in the tile [E], unit [E], unit mask [E])."""
    e = tl.arange(0, ROWS * BLOCK_D)
    d = tl.program_id(0) * BLOCK_D + e % BLOCK_D
    return e // BLOCK_D, d, d < D


@triton.autotune(configs=_FORWARD, key=_KEY)
@triton.jit
def _forward(x, records, y, N, D, ACT: tl.constexpr, BLOCK_D: tl.constexpr, ROWS: tl.constexpr):
    r, d, dmask = _elements(D, BLOCK_D, ROWS)
    w1, b1, W2, b2, w3, b3, ah, ao = _load_record(records, d, dmask, D)
    for n0 in range(tl.program_id(1) * ROWS, N, tl.num_programs(1) * ROWS):
        n = n0 + r  # [E]
        off = n.to(tl.int64) * D + d
        m = (n < N) & dmask
        u = tl.load(x + off, mask=m, other=0.0).to(tl.float32)
        _, _, _, _, h2 = _hidden(u, w1, b1, W2, b2, ah, ACT)
        out = u + ao * (tl.sum(h2 * w3, axis=0) + b3)
        tl.store(y + off, out.to(y.dtype.element_ty), mask=m)


@triton.autotune(configs=_BACKWARD, key=_KEY)
@triton.jit
def _backward(x, records, dy, dx, partial, N, D, ACT: tl.constexpr, BLOCK_D: tl.constexpr, ROWS: tl.constexpr):
    r, d, dmask = _elements(D, BLOCK_D, ROWS)
    w1, b1, W2, b2, w3, b3, ah, ao = _load_record(records, d, dmask, D)
    # parameter gradients per element slot, summed over this program's rows
    g_w1 = tl.zeros([8, ROWS * BLOCK_D], dtype=tl.float32)
    g_b1 = tl.zeros([8, ROWS * BLOCK_D], dtype=tl.float32)
    g_W2 = tl.zeros([8, 8, ROWS * BLOCK_D], dtype=tl.float32)
    g_b2 = tl.zeros([8, ROWS * BLOCK_D], dtype=tl.float32)
    g_w3 = tl.zeros([8, ROWS * BLOCK_D], dtype=tl.float32)
    g_b3 = tl.zeros([ROWS * BLOCK_D], dtype=tl.float32)
    g_ah = tl.zeros([ROWS * BLOCK_D], dtype=tl.float32)
    g_ao = tl.zeros([ROWS * BLOCK_D], dtype=tl.float32)
    for n0 in range(tl.program_id(1) * ROWS, N, tl.num_programs(1) * ROWS):
        n = n0 + r  # [E]
        off = n.to(tl.int64) * D + d
        m = (n < N) & dmask
        u = tl.load(x + off, mask=m, other=0.0).to(tl.float32)
        g = tl.load(dy + off, mask=m, other=0.0).to(tl.float32)  # masked slots: g = 0, no contribution
        z1, h1, z2, a2, h2 = _hidden(u, w1, b1, W2, b2, ah, ACT)
        g_ao += g * (tl.sum(h2 * w3, axis=0) + b3)
        go = g * ao  # dL/d(w3 . h2 + b3)
        g_b3 += go
        g_w3 += go[None, :] * h2
        dh2 = go[None, :] * w3  # [8, ROWS * BLOCK_D]
        g_ah += tl.sum(dh2 * a2, axis=0)
        dz2 = dh2 * ah[None, :] * _act_grad(z2, ACT)  # [8 (j), E]
        g_b2 += dz2
        g_W2 += dz2[:, None, :] * h1[None, :, :]
        dz1 = (dh2 + tl.sum(dz2[:, None, :] * W2, axis=0)) * _act_grad(z1, ACT)  # [8 (i), E]
        g_b1 += dz1
        g_w1 += dz1 * u[None, :]
        tl.store(dx + off, (g + tl.sum(dz1 * w1, axis=0)).to(dx.dtype.element_ty), mask=m)
    # fold the ROWS slots of each unit (e = r * BLOCK_D + unit), then one record per unit
    du = tl.program_id(0) * BLOCK_D + tl.arange(0, BLOCK_D)
    vec, vmask, mat, mmask = _record_offsets(du, du < D, D)
    part = partial + tl.program_id(1).to(tl.int64) * D * 112  # this program's transposed records
    tl.store(part + vec, tl.sum(tl.reshape(g_w1, [8, ROWS, BLOCK_D]), axis=1), mask=vmask)
    tl.store(part + 7 * D + vec, tl.sum(tl.reshape(g_b1, [8, ROWS, BLOCK_D]), axis=1), mask=vmask)
    tl.store(part + 14 * D + mat, tl.sum(tl.reshape(g_W2, [8, 8, ROWS, BLOCK_D]), axis=2), mask=mmask)
    tl.store(part + 63 * D + vec, tl.sum(tl.reshape(g_b2, [8, ROWS, BLOCK_D]), axis=1), mask=vmask)
    tl.store(part + 70 * D + vec, tl.sum(tl.reshape(g_w3, [8, ROWS, BLOCK_D]), axis=1), mask=vmask)
    tl.store(part + 77 * D + du, tl.sum(tl.reshape(g_b3, [ROWS, BLOCK_D]), axis=0), mask=du < D)
    tl.store(part + 78 * D + du, tl.sum(tl.reshape(g_ah, [ROWS, BLOCK_D]), axis=0), mask=du < D)
    tl.store(part + 79 * D + du, tl.sum(tl.reshape(g_ao, [ROWS, BLOCK_D]), axis=0), mask=du < D)


class _MicroMLP(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, params, activation):
        D = x.shape[-1]
        (x2,) = contiguous(x.reshape(-1, D))  # [N, D]
        records = params.detach().t().contiguous()  # [112, D]: a field of adjacent units is contiguous
        N = x2.shape[0]
        act = ACTIVATIONS.index(activation)
        y = new_output(x.shape, x.dtype, x.device)
        if N and D:
            grid = lambda meta: (cdiv(D, meta["BLOCK_D"]), _row_programs(N, D, meta["BLOCK_D"], x.device))
            _forward[grid](x2, records, y, N, D, ACT=act)
        ctx.save_for_backward(x2, records)
        ctx.act, ctx.shape = act, x.shape
        return y

    @staticmethod
    def backward(ctx, dy):
        x2, records = ctx.saved_tensors
        N, D = x2.shape
        (dy,) = contiguous(dy.reshape(N, D))
        dx = torch.empty_like(x2)
        # P row programs, fixed before autotuning picks BLOCK_D (it sizes the buffer);
        # the padding [80:112] is never written and stays 0
        P = _row_programs(N, D, UNITS, x2.device)
        partial = torch.zeros((P, RECORD, D), dtype=torch.float32, device=x2.device)
        if N and D:
            _backward[lambda meta: (cdiv(D, meta["BLOCK_D"]), P)](x2, records, dy, dx, partial, N, D, ACT=ctx.act)
        return dx.reshape(ctx.shape), partial.sum(0).t().contiguous().to(records.dtype), None


@implements("micro_mlp", dtypes=(torch.float32, torch.bfloat16))
def micro_mlp(x, params, activation="relu"):
    return _MicroMLP.apply(x, params, activation)
