"""stack_step, Triton: one fused pass per direction.

A program owns a tile of BLOCK_K slots x BLOCK_D features of one batch row. Forward: it
loads its slots and their neighbours above and below (the shifted rows come from cache;
each element is read from memory once), mixes them with (push, noop, pop), and writes the
new slots; the programs of the first feature block also do the mass column, and those of
the first slot block the popped value and mass.

Backward: the transpose of the same mix (dV_k = q dV'_{k-1} + n dV'_k + p dV'_{k+1}, with
the popped gradient above slot 0), in the same tiling; each program also reduces its
tile's contribution to d(actions) and writes the three partial sums once, summed after.
"""

import torch
import triton
import triton.language as tl

from backends.registry import implements, new_output
from backends.triton._common import cdiv, configs, contiguous

_CONFIGS = configs(dict(BLOCK_K=4, BLOCK_D=256), dict(BLOCK_K=8, BLOCK_D=128), dict(BLOCK_K=16, BLOCK_D=64),
                   dict(BLOCK_K=2, BLOCK_D=512), num_warps=(4,), num_stages=(2,),
                   interpreter=dict(BLOCK_K=4, BLOCK_D=32))
_KEY = ["B", "K", "D"]


def _tiles(B, K, D, meta) -> int:
    return B * cdiv(K, meta["BLOCK_K"]) * cdiv(D, meta["BLOCK_D"])


@triton.jit
def _tile(actions, K, D, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr):
    """This program's tile: (batch, slot block, feature block, slots k [BLOCK_K],
    features d [BLOCK_D], d mask, the batch row's start in [B, K, D] (int64), and its
    actions p, n, q in float32)."""
    pid = tl.program_id(0)
    nd = tl.cdiv(D, BLOCK_D)
    nk = tl.cdiv(K, BLOCK_K)
    pb = pid // (nk * nd)
    pk = (pid // nd) % nk
    pd = pid % nd
    d = pd * BLOCK_D + tl.arange(0, BLOCK_D)
    p = tl.load(actions + pb * 3).to(tl.float32)
    n = tl.load(actions + pb * 3 + 1).to(tl.float32)
    q = tl.load(actions + pb * 3 + 2).to(tl.float32)
    return pb, pk, pd, pk * BLOCK_K + tl.arange(0, BLOCK_K), d, d < D, pb.to(tl.int64) * K * D, p, n, q


@triton.jit
def _shifted(ptr, off, m, kk, K, stride):
    """Slots k-1, k, k+1 at offsets ``off`` (slots ``kk``) of a stack tensor whose slot
    stride is ``stride``, float32, 0 outside slots 0..K-1."""
    prev = tl.load(ptr + off - stride, mask=m & (kk >= 1), other=0.0).to(tl.float32)
    cur = tl.load(ptr + off, mask=m, other=0.0).to(tl.float32)
    nxt = tl.load(ptr + off + stride, mask=m & (kk + 1 < K), other=0.0).to(tl.float32)
    return prev, cur, nxt


@triton.jit
def _above(prev, top, kk):
    """The slot above each slot: ``top`` above slot 0."""
    return tl.where(kk == 0, top, prev)


@triton.autotune(configs=_CONFIGS, key=_KEY)
@triton.jit
def _forward(values, mass, actions, push, out_v, out_m, pop_v, pop_m, B, K, D,
             BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr):
    pb, pk, pd, k, d, dmask, base, p, n, q = _tile(actions, K, D, BLOCK_K, BLOCK_D)
    kk = k[:, None]
    off = base + kk * D + d[None, :]  # [BLOCK_K, BLOCK_D]
    m = (kk < K) & dmask[None, :]
    prev, cur, nxt = _shifted(values, off, m, kk, K, D)
    top = tl.load(push + pb * D + d, mask=dmask, other=0.0).to(tl.float32)  # [BLOCK_D]
    tl.store(out_v + off, (p * _above(prev, top[None, :], kk) + n * cur + q * nxt).to(out_v.dtype.element_ty), mask=m)
    if pk == 0:
        v0 = tl.load(values + base + d, mask=dmask, other=0.0).to(tl.float32)
        tl.store(pop_v + pb * D + d, (q * v0).to(pop_v.dtype.element_ty), mask=dmask)
    if pd == 0:
        moff = pb * K + k  # [BLOCK_K]
        mm = k < K
        mp, mc, mn = _shifted(mass, moff, mm, k, K, 1)
        tl.store(out_m + moff, (p * _above(mp, 1.0, k) + n * mc + q * mn).to(out_m.dtype.element_ty), mask=mm)
        if pk == 0:
            tl.store(pop_m + pb, (q * tl.load(mass + pb * K).to(tl.float32)).to(pop_m.dtype.element_ty))


@triton.autotune(configs=_CONFIGS, key=_KEY)
@triton.jit
def _backward(values, mass, actions, push, g_v, g_m, g_pv, g_pm, d_values, d_mass, d_push, partial, B, K, D,
              BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr):
    pb, pk, pd, k, d, dmask, base, p, n, q = _tile(actions, K, D, BLOCK_K, BLOCK_D)
    kk = k[:, None]
    off = base + kk * D + d[None, :]  # [BLOCK_K, BLOCK_D]
    m = (kk < K) & dmask[None, :]
    vp, vc, vn = _shifted(values, off, m, kk, K, D)
    gp, gc, gn = _shifted(g_v, off, m, kk, K, D)
    top = tl.load(push + pb * D + d, mask=dmask, other=0.0).to(tl.float32)[None, :]  # [1, BLOCK_D]
    g_top = tl.load(g_pv + pb * D + d, mask=dmask, other=0.0).to(tl.float32)[None, :]  # popped_value's gradient
    tl.store(d_values + off, (q * _above(gp, g_top, kk) + n * gc + p * gn).to(d_values.dtype.element_ty), mask=m)
    # d(actions): each new slot's gradient times what p, n, q multiplied
    acc_p = tl.sum(tl.sum(gc * _above(vp, top, kk), axis=1), axis=0)
    acc_n = tl.sum(tl.sum(gc * vc, axis=1), axis=0)
    acc_q = tl.sum(tl.sum(gc * vn, axis=1), axis=0)
    if pk == 0:
        g0 = tl.load(g_v + base + d, mask=dmask, other=0.0).to(tl.float32)
        tl.store(d_push + pb * D + d, (p * g0).to(d_push.dtype.element_ty), mask=dmask)
        v0 = tl.load(values + base + d, mask=dmask, other=0.0).to(tl.float32)
        acc_q += tl.sum(tl.sum(g_top * v0[None, :], axis=1), axis=0)
    if pd == 0:
        moff = pb * K + k  # [BLOCK_K]
        mm = k < K
        mp, mc, mn = _shifted(mass, moff, mm, k, K, 1)
        gmp, gmc, gmn = _shifted(g_m, moff, mm, k, K, 1)
        gm_top = tl.load(g_pm + pb).to(tl.float32)  # popped_mass's gradient
        tl.store(d_mass + moff, (q * _above(gmp, gm_top, k) + n * gmc + p * gmn).to(d_mass.dtype.element_ty), mask=mm)
        acc_p += tl.sum(gmc * _above(mp, 1.0, k), axis=0)
        acc_n += tl.sum(gmc * mc, axis=0)
        acc_q += tl.sum(gmc * mn, axis=0)
        if pk == 0:
            acc_q += gm_top * tl.load(mass + pb * K).to(tl.float32)
    pid = tl.program_id(0)
    tl.store(partial + pid * 3, acc_p)
    tl.store(partial + pid * 3 + 1, acc_n)
    tl.store(partial + pid * 3 + 2, acc_q)


class _StackStep(torch.autograd.Function):
    @staticmethod
    def forward(ctx, values, mass, actions, push_value):
        values, mass, actions, push_value = contiguous(values, mass, actions, push_value)
        B, K, D = values.shape
        dtype, device = values.dtype, values.device
        out_v, out_m = new_output((B, K, D), dtype, device), new_output((B, K), dtype, device)
        pop_v, pop_m = new_output((B, D), dtype, device), new_output((B,), dtype, device)
        if B and K and D:
            _forward[lambda meta: (_tiles(B, K, D, meta),)](values, mass, actions, push_value, out_v, out_m, pop_v,
                                                            pop_m, B, K, D)
        ctx.save_for_backward(values, mass, actions, push_value)
        return out_v, out_m, pop_v, pop_m

    @staticmethod
    def backward(ctx, g_v, g_m, g_pv, g_pm):
        values, mass, actions, push_value = ctx.saved_tensors
        g_v, g_m, g_pv, g_pm = contiguous(g_v, g_m, g_pv, g_pm)
        B, K, D = values.shape
        d_values, d_mass, d_push = torch.empty_like(values), torch.empty_like(mass), torch.empty_like(push_value)
        if not (B and K and D):
            return d_values.zero_(), d_mass.zero_(), actions.new_zeros(B, 3), d_push.zero_()
        # one partial (p, n, q) sum per program; the tiling is the autotuner's choice, so
        # size the buffer for the finest and read back as many as the chosen one wrote
        partial = torch.empty((max(_tiles(B, K, D, c.kwargs) for c in _CONFIGS), 3), dtype=torch.float32,
                              device=values.device)
        _backward[lambda meta: (_tiles(B, K, D, meta),)](values, mass, actions, push_value, g_v, g_m, g_pv, g_pm,
                                                         d_values, d_mass, d_push, partial, B, K, D)
        used = _tiles(B, K, D, _backward.best_config.kwargs)
        # programs run batch-major, so each batch row's partials are contiguous
        d_actions = partial[:used].view(B, used // B, 3).sum(1).to(actions.dtype)
        return d_values, d_mass, d_actions, d_push


@implements("stack_step", dtypes=(torch.float32, torch.bfloat16))
def stack_step(values, mass, actions, push_value):
    return _StackStep.apply(values, mass, actions, push_value)
