"""elman_scan, Numba CUDA: one block per batch row walks the sequence with R held on
chip, thread i owning output row i.

Each thread keeps its row of R (log space: log|R| and sign R) in registers/local memory
and the state h_{t-1} is shared by the block; a step is one row-dot per thread, a
barrier, and the state update. The backward walks time in reverse the same way: thread j
keeps column j of R for (R^T dz)_j, and its row of R's gradient accumulates over t in
local memory (stored [B, D, D], summed over B after the kernel: no atomics). D <= MAX_D;
float32 arithmetic.

Log space: R x per output row in the contract's stable form, then the contract's signed
log-sums and log|tanh| (its clamp at 2^-126; exact zeros (-inf, +1) pass no gradient);
the forward keeps r = R x and z = u + R x in log form for the backward.
"""

import math

import numpy as np
import torch
from numba import cuda, float32

from backends.numba_cuda._common import ONE, ZERO, contiguous, launch, output, sigmoid
from backends.ops.elman_scan import TANH_SATURATED, TANH_SMALL, TINY
from backends.registry import implements

MAX_D = 128  # a row and a column of R (and a row of dR) per thread in local memory
_TINY = np.float32(TINY)
_HALF = np.float32(0.5)
_TWO = np.float32(2.0)
_THREE = np.float32(3.0)
_SAT = np.float32(TANH_SATURATED)
_SMALL = np.float32(TANH_SMALL)
_NEG_INF = np.float32(-np.inf)
_INF = np.float32(np.inf)


@cuda.jit(cache=True)
def _linear_forward(u, R, gate, h0, has_gate, has_h0, h, c):
    # u, gate, h, c [B, T, D]; R [D, D]; h0 [B, D]
    B, T, D = u.shape
    b, i = cuda.blockIdx.x, cuda.threadIdx.x
    row = cuda.local.array(MAX_D, float32)
    state = cuda.shared.array(MAX_D, float32)
    if i < D:
        for j in range(D):
            row[j] = R[i, j]
        state[i] = h0[b, i] if has_h0 else ZERO
    cuda.syncthreads()
    for t in range(T):
        new = ZERO
        if i < D:
            z = u[b, t, i]
            for j in range(D):
                z += row[j] * state[j]
            ct = math.tanh(z)
            if has_gate:
                c[b, t, i] = ct
                new = state[i] + sigmoid(gate[b, t, i]) * (ct - state[i])
            else:
                new = ct
        cuda.syncthreads()  # every thread has read h_{t-1}
        if i < D:
            state[i] = new
            h[b, t, i] = new
        cuda.syncthreads()


@cuda.jit(cache=True)
def _linear_backward(R, gate, h, h0, c, dh, has_gate, has_h0, du, dgate, dh0, dRb):
    # R [D, D]; gate, h, c, dh, du, dgate [B, T, D]; h0, dh0 [B, D]; dRb [B, D, D]
    B, T, D = h.shape
    b, i = cuda.blockIdx.x, cuda.threadIdx.x
    col = cuda.local.array(MAX_D, float32)  # column i of R
    acc = cuda.local.array(MAX_D, float32)  # row i of dR
    dz_s = cuda.shared.array(MAX_D, float32)
    prev_s = cuda.shared.array(MAX_D, float32)
    if i < D:
        for k in range(D):
            col[k] = R[k, i]
            acc[k] = ZERO
    carry = ZERO  # dL/dh_t from step t + 1
    for t in range(T - 1, -1, -1):
        dz = ZERO
        if i < D:
            if t > 0:
                prev = h[b, t - 1, i]
            else:
                prev = h0[b, i] if has_h0 else ZERO
            prev_s[i] = prev
            g = dh[b, t, i] + carry
            if has_gate:
                d = sigmoid(gate[b, t, i])
                ct = c[b, t, i]
                dz = g * d * (ONE - ct * ct)
                dgate[b, t, i] = g * (ct - prev) * d * (ONE - d)
                carry = g * (ONE - d)
            else:
                ct = h[b, t, i]
                dz = g * (ONE - ct * ct)
                carry = ZERO
            du[b, t, i] = dz
            dz_s[i] = dz
        cuda.syncthreads()
        if i < D:
            for k in range(D):
                carry += col[k] * dz_s[k]  # (R^T dz)_i
                acc[k] += dz * prev_s[k]
        cuda.syncthreads()
    if i < D:
        dh0[b, i] = carry
        for k in range(D):
            dRb[b, i, k] = acc[k]


@cuda.jit(device=True)
def _slae(la, sa, lb, sb):
    m = la if la >= lb else lb
    ms = ZERO if m == _NEG_INF else m
    r = sa * math.exp(la - ms) + sb * math.exp(lb - ms)
    ar = abs(r)
    return m + math.log(_TINY if ar < _TINY else ar), (-ONE if r < ZERO else ONE)


@cuda.jit(device=True)
def _slae_back(la, sa, lb, sb, g):
    m = la if la >= lb else lb
    ms = ZERO if m == _NEG_INF else m
    ea = sa * math.exp(la - ms)
    eb = sb * math.exp(lb - ms)
    r = ea + eb
    if abs(r) < _TINY:  # an exact cancellation: through the max only
        if la > lb:
            return g, ZERO
        if lb > la:
            return ZERO, g
        return _HALF * g, _HALF * g
    return g * ea / r, g * eb / r


@cuda.jit(device=True)
def _log_tanh_abs(z_log):
    zc = _SAT if z_log > _SAT else z_log
    a = math.exp(zc)
    if a < _SMALL:
        return zc - a * a / _THREE
    return zc + math.log(math.tanh(a) / a)


@cuda.jit(device=True)
def _log_tanh_abs_back(z_log):
    if z_log > _SAT:
        return ZERO
    a = math.exp(z_log)
    if a < _SMALL:
        return ONE - _TWO * a * a / _THREE
    th = math.tanh(a)
    return a * (ONE - th * th) / th


@cuda.jit(device=True)
def _log_sigmoid(x):
    # (ZERO if ZERO < x else x) is min(x, ZERO): numba 0.68's CUDA target fails on the variadic min/max
    return (ZERO if ZERO < x else x) - math.log1p(math.exp(-abs(x)))


@cuda.jit(device=True)
def _sign_log(x):
    if x == ZERO:
        return _NEG_INF, ONE
    return math.log(abs(x)), (-ONE if x < ZERO else ONE)


@cuda.jit(cache=True)
def _log_forward(u, logR, sR, gate, h0l, h0s, has_gate, has_h0, hl, hs, rl, rs, zl, zs):
    B, T, D = u.shape
    b, i = cuda.blockIdx.x, cuda.threadIdx.x
    lrow = cuda.local.array(MAX_D, float32)
    srow = cuda.local.array(MAX_D, float32)
    l_s = cuda.shared.array(MAX_D, float32)
    s_s = cuda.shared.array(MAX_D, float32)
    if i < D:
        for j in range(D):
            lrow[j] = logR[i, j]
            srow[j] = sR[i, j]
        l_s[i] = h0l[b, i] if has_h0 else _NEG_INF
        s_s[i] = h0s[b, i] if has_h0 else ONE
    cuda.syncthreads()
    for t in range(T):
        nl = ZERO
        ns = ONE
        if i < D:
            m = _NEG_INF
            for j in range(D):
                v = lrow[j] + l_s[j]
                m = v if v > m else m  # max(m, v), written out (numba 0.68's CUDA max fails to compile)
            if m == _NEG_INF:
                m = ZERO
            p = ZERO
            n = ZERO
            for j in range(D):
                e = math.exp(lrow[j] + l_s[j] - m)
                if srow[j] * s_s[j] > ZERO:
                    p += e
                else:
                    n += e
            diff = p - n
            r_log = _NEG_INF if diff == ZERO else m + math.log(abs(diff))
            r_sign = -ONE if diff < ZERO else ONE
            ul, us = _sign_log(u[b, t, i])
            z_log, z_sign = _slae(ul, us, r_log, r_sign)
            a = _log_tanh_abs(z_log)
            if has_gate:
                g = gate[b, t, i]
                nl, ns = _slae(_log_sigmoid(-g) + l_s[i], s_s[i], _log_sigmoid(g) + a, z_sign)
            else:
                nl, ns = a, z_sign
            rl[b, t, i], rs[b, t, i], zl[b, t, i], zs[b, t, i] = r_log, r_sign, z_log, z_sign
        cuda.syncthreads()
        if i < D:
            l_s[i], s_s[i] = nl, ns
            hl[b, t, i], hs[b, t, i] = nl, ns
        cuda.syncthreads()


@cuda.jit(cache=True)
def _log_backward(u, R, gate, hl, hs, h0l, h0s, rl, rs, zl, zs, dhl, has_gate, has_h0, du, dgate, dh0l, dRb):
    B, T, D = u.shape
    b, i = cuda.blockIdx.x, cuda.threadIdx.x
    col = cuda.local.array(MAX_D, float32)  # column i of R
    acc = cuda.local.array(MAX_D, float32)  # row i of dR
    l_s = cuda.shared.array(MAX_D, float32)  # log|h_{t-1}|
    s_s = cuda.shared.array(MAX_D, float32)
    g_s = cuda.shared.array(MAX_D, float32)  # dL/d r_log_k times r_sign_k (0 for exact zeros)
    r_s = cuda.shared.array(MAX_D, float32)  # r_log_k (+inf for exact zeros)
    if i < D:
        for k in range(D):
            col[k] = R[k, i]
            acc[k] = ZERO
    carry = ZERO  # dL/d log|h_t| from step t + 1
    for t in range(T - 1, -1, -1):
        if i < D:
            if t > 0:
                l, s = hl[b, t - 1, i], hs[b, t - 1, i]
            elif has_h0:
                l, s = h0l[b, i], h0s[b, i]
            else:
                l, s = _NEG_INF, ONE
            l_s[i], s_s[i] = l, s
            gh = dhl[b, t, i] + carry
            z_log, z_sign = zl[b, t, i], zs[b, t, i]
            if has_gate:
                g = gate[b, t, i]
                g_keep, g_a = _slae_back(_log_sigmoid(-g) + l, s, _log_sigmoid(g) + _log_tanh_abs(z_log), z_sign, gh)
                d = sigmoid(g)
                dgate[b, t, i] = -g_keep * d + g_a * (ONE - d)
                carry = g_keep
            else:
                g_a = gh
                carry = ZERO
            g_z = g_a * _log_tanh_abs_back(z_log)
            x = u[b, t, i]
            ul, us = _sign_log(x)
            r_log = rl[b, t, i]
            g_u, g_r = _slae_back(ul, us, r_log, rs[b, t, i], g_z)
            du[b, t, i] = ZERO if x == ZERO else g_u / x
            zero = r_log == _NEG_INF
            g_s[i] = ZERO if zero else g_r * rs[b, t, i]
            r_s[i] = _INF if zero else r_log
        cuda.syncthreads()
        if i < D:
            # d r_log_k / d R_kj = x_j / y_k = s_j r_sign_k exp(l_j - r_log_k)
            for k in range(D):
                w = s_s[i] * math.exp(l_s[i] - r_s[k])  # j = i: x_i / |y_k|
                carry += g_s[k] * col[k] * w
                acc[k] += g_s[i] * s_s[k] * math.exp(l_s[k] - r_s[i])
        cuda.syncthreads()
    if i < D:
        dh0l[b, i] = carry
        for k in range(D):
            dRb[b, i, k] = acc[k]


def _threads(D: int) -> int:
    if D > MAX_D:
        raise ValueError(f"elman_scan[numba_cuda]: argument 'R' expected D <= {MAX_D} (R is held on chip per block), "
                         f"got D = {D}")
    return max(32, -(-D // 32) * 32)


class _Linear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, R, gate, h0):
        u, R, gate, h0 = contiguous(u, R, gate, h0)
        B, T, D = u.shape
        h = output((B, T, D), u)
        c = output((B, T, D) if gate is not None else (1, 1, 1), u)  # not written without a gate
        launch(_linear_forward, B, _threads(D), u, R, gate if gate is not None else u,
               h0 if h0 is not None else u[:, 0].contiguous(), gate is not None, h0 is not None, h, c)
        ctx.save_for_backward(R, gate, h, h0, c)
        ctx.flags = (gate is not None, h0 is not None)
        return h

    @staticmethod
    def backward(ctx, dh):
        R, gate, h, h0, c = ctx.saved_tensors
        has_gate, has_h0 = ctx.flags
        (dh,) = contiguous(dh)
        B, T, D = h.shape
        du = output((B, T, D), h)
        dgate = output((B, T, D) if has_gate else (1, 1, 1), h)  # not written without a gate
        dh0 = output((B, D), h)
        dRb = output((B, D, D), h)
        launch(_linear_backward, B, _threads(D), R, gate if has_gate else h, h, h0 if has_h0 else h[:, 0].contiguous(),
               c, dh, has_gate, has_h0, du, dgate, dh0, dRb)
        return du, dRb.sum(0), (dgate if has_gate else None), (dh0 if has_h0 else None)


class _Log(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, R, gate, h0_log, h0_sign):
        u, R, gate, h0_log, h0_sign = contiguous(u, R, gate, h0_log, h0_sign)
        B, T, D = u.shape
        zero = R == 0
        logR = torch.where(zero, float("-inf"), torch.log(torch.where(zero, 1.0, R.abs()))).contiguous()
        sR = torch.where(R < 0, -1.0, 1.0).to(R.dtype).contiguous()
        hl, hs = output((B, T, D), u), output((B, T, D), u)
        work = [output((B, T, D), u) for _ in range(4)]  # rl, rs, zl, zs
        has_h0 = h0_log is not None
        first = u[:, 0].contiguous()
        launch(_log_forward, B, _threads(D), u, logR, sR, gate if gate is not None else u,
               h0_log if has_h0 else first, h0_sign if has_h0 else first, gate is not None, has_h0, hl, hs, *work)
        ctx.save_for_backward(u, R, gate, hl, hs, h0_log, h0_sign, *work)
        ctx.flags = (gate is not None, has_h0)
        ctx.mark_non_differentiable(hs)
        return hl, hs

    @staticmethod
    def backward(ctx, dhl, _dhs):
        u, R, gate, hl, hs, h0_log, h0_sign, *work = ctx.saved_tensors
        has_gate, has_h0 = ctx.flags
        B, T, D = u.shape
        dhl = torch.zeros_like(hl) if dhl is None else dhl.contiguous()
        du = output((B, T, D), u)
        dgate = output((B, T, D) if has_gate else (1, 1, 1), u)  # not written without a gate
        dh0l = output((B, D), u)
        dRb = output((B, D, D), u)
        first = u[:, 0].contiguous()
        launch(_log_backward, B, _threads(D), u, R, gate if has_gate else u, hl, hs, h0_log if has_h0 else first,
               h0_sign if has_h0 else first, *work, dhl, has_gate, has_h0, du, dgate, dh0l, dRb)
        return du, dRb.sum(0), (dgate if has_gate else None), (dh0l if has_h0 else None), None


@implements("elman_scan", dtypes=(torch.float32,))
def elman_scan(u, R, gate=None, h0=None, log_space=False):
    _threads(u.shape[2])
    if not log_space:
        return _Linear.apply(u, R, gate, h0)
    h0_log, h0_sign = (None, None) if h0 is None else h0
    return _Log.apply(u, R, gate, h0_log, h0_sign)
