"""elman_scan, Triton: one program per batch row walks the sequence with R held on chip.

R (or, under log space, log|R| and sign R) is loaded once into a [BLOCK_D, BLOCK_D]
register tile (BLOCK_D = D rounded up to a power of two, D <= MAX_D); each step's R h is
a row-sum of that tile against the state, so nothing but u, gate and the outputs moves
through memory. The backward walks time in reverse in one program per batch row too,
with R^T dz a column-sum of the same tile and R's gradient accumulated over t in a
register tile per batch row (stored [B, D, D], summed over B after the kernel: no
atomics). Arithmetic and state in float32.

Log space: R x per output row in the contract's stable form (terms log|R_ij| + x_log_j,
their row maximum, the signed sums; an exact zero is (-inf, +1) and passes no
gradient), then the contract's signed log-sums and log|tanh| (float32; its clamp at
2^-126). The forward keeps r = R x and z = u + R x in log form for the backward.
"""

import torch
import triton
import triton.language as tl

import backends.ops.elman_scan as contract
from backends.registry import implements, new_output
from backends.triton._common import contiguous, next_power_of_2, sigmoid, tanh

# the contract's clamps as constexprs: a @triton.jit function may read a global only if it
# is one (the compiler refuses a plain float; the interpreter does not check)
TINY = tl.constexpr(contract.TINY)
TANH_SATURATED = tl.constexpr(contract.TANH_SATURATED)
TANH_SMALL = tl.constexpr(contract.TANH_SMALL)

MAX_D = 128  # R's [D, D] tile in registers: 64 KB of float32 per program at D = 128


@triton.jit
def _tile(R, D, BLOCK_D: tl.constexpr, other):
    i = tl.arange(0, BLOCK_D)
    m = (i[:, None] < D) & (i[None, :] < D)
    return tl.load(R + i[:, None] * D + i[None, :], mask=m, other=other).to(tl.float32)


@triton.jit
def _linear_forward(u, R, gate, h0, h, c, T, D, HAS_GATE: tl.constexpr, HAS_H0: tl.constexpr,
                    BLOCK_D: tl.constexpr):
    b = tl.program_id(0)
    i = tl.arange(0, BLOCK_D)
    mask = i < D
    Rt = _tile(R, D, BLOCK_D, 0.0)  # [i, j]
    state = tl.zeros([BLOCK_D], dtype=tl.float32)
    if HAS_H0:
        state = tl.load(h0 + b * D + i, mask=mask, other=0.0).to(tl.float32)
    off = b.to(tl.int64) * T * D + i
    for _ in range(T):
        z = tl.load(u + off, mask=mask, other=0.0).to(tl.float32) + tl.sum(Rt * state[None, :], axis=1)
        ct = tanh(z)
        if HAS_GATE:
            d = sigmoid(tl.load(gate + off, mask=mask, other=0.0).to(tl.float32))
            tl.store(c + off, ct, mask=mask)
            state = state + d * (ct - state)
        else:
            state = ct
        state = tl.where(mask, state, 0.0)
        tl.store(h + off, state.to(h.dtype.element_ty), mask=mask)
        off += D


@triton.jit
def _linear_backward(R, gate, h, h0, c, dh, du, dgate, dh0, dRb, T, D, HAS_GATE: tl.constexpr,
                     HAS_H0: tl.constexpr, BLOCK_D: tl.constexpr):
    b = tl.program_id(0)
    i = tl.arange(0, BLOCK_D)
    mask = i < D
    Rt = _tile(R, D, BLOCK_D, 0.0)
    dR = tl.zeros([BLOCK_D, BLOCK_D], dtype=tl.float32)
    carry = tl.zeros([BLOCK_D], dtype=tl.float32)  # dL/dh_t from step t + 1
    base = b.to(tl.int64) * T * D
    for k in range(T):
        t = T - 1 - k
        off = base + t * D + i
        if t > 0:
            prev = tl.load(h + off - D, mask=mask, other=0.0).to(tl.float32)
        elif HAS_H0:
            prev = tl.load(h0 + b * D + i, mask=mask, other=0.0).to(tl.float32)
        else:
            prev = tl.zeros([BLOCK_D], dtype=tl.float32)
        g = tl.load(dh + off, mask=mask, other=0.0).to(tl.float32) + carry
        if HAS_GATE:
            d = sigmoid(tl.load(gate + off, mask=mask, other=0.0).to(tl.float32))
            ct = tl.load(c + off, mask=mask, other=0.0)
            dz = g * d * (1.0 - ct * ct)
            tl.store(dgate + off, (g * (ct - prev) * d * (1.0 - d)).to(dgate.dtype.element_ty), mask=mask)
            carry = g * (1.0 - d)
        else:
            ct = tl.load(h + off, mask=mask, other=0.0).to(tl.float32)
            dz = g * (1.0 - ct * ct)
            carry = tl.zeros([BLOCK_D], dtype=tl.float32)
        dz = tl.where(mask, dz, 0.0)
        tl.store(du + off, dz.to(du.dtype.element_ty), mask=mask)
        carry += tl.sum(Rt * dz[:, None], axis=0)  # R^T dz
        dR += dz[:, None] * prev[None, :]
    tl.store(dh0 + b * D + i, carry, mask=mask)
    m2 = mask[:, None] & mask[None, :]
    tl.store(dRb + b.to(tl.int64) * D * D + i[:, None] * D + i[None, :], dR, mask=m2)


@triton.jit
def _slae(la, sa, lb, sb):
    m = tl.maximum(la, lb)
    ms = tl.where(m == -float("inf"), 0.0, m)
    r = sa * tl.exp(la - ms) + sb * tl.exp(lb - ms)
    return m + tl.log(tl.maximum(tl.abs(r), TINY)), tl.where(r < 0.0, -1.0, 1.0)


@triton.jit
def _slae_back(la, sa, lb, sb, g):
    m = tl.maximum(la, lb)
    ms = tl.where(m == -float("inf"), 0.0, m)
    ea = sa * tl.exp(la - ms)
    eb = sb * tl.exp(lb - ms)
    r = ea + eb
    clamped = tl.abs(r) < TINY
    r_safe = tl.where(clamped, 1.0, r)
    ga = tl.where(clamped, tl.where(la > lb, g, tl.where(la == lb, 0.5 * g, 0.0)), g * ea / r_safe)
    gb = tl.where(clamped, tl.where(lb > la, g, tl.where(la == lb, 0.5 * g, 0.0)), g * eb / r_safe)
    return ga, gb


@triton.jit
def _log_tanh_abs(z_log):
    zc = tl.minimum(z_log, TANH_SATURATED)
    a = tl.exp(zc)
    small = a < TANH_SMALL
    a_safe = tl.where(small, 1.0, a)
    return zc + tl.where(small, -a * a / 3.0, tl.log(tanh(a_safe) / a_safe))


@triton.jit
def _log_tanh_abs_back(z_log):
    a = tl.exp(tl.minimum(z_log, TANH_SATURATED))
    small = a < TANH_SMALL
    a_safe = tl.where(small, 1.0, a)
    th = tanh(a_safe)
    slope = tl.where(small, 1.0 - 2.0 * a * a / 3.0, a_safe * (1.0 - th * th) / th)
    return tl.where(z_log > TANH_SATURATED, 0.0, slope)


@triton.jit
def _log_sigmoid(x):
    return tl.minimum(x, 0.0) - tl.log(1.0 + tl.exp(-tl.abs(x)))


@triton.jit
def _sign_log(x):
    zero = x == 0.0
    return tl.where(zero, -float("inf"), tl.log(tl.where(zero, 1.0, tl.abs(x)))), tl.where(x < 0.0, -1.0, 1.0)


@triton.jit
def _log_forward(u, logR, sR, gate, h0l, h0s, hl, hs, rl, rs, zl, zs, T, D, HAS_GATE: tl.constexpr,
                 HAS_H0: tl.constexpr, BLOCK_D: tl.constexpr):
    b = tl.program_id(0)
    i = tl.arange(0, BLOCK_D)
    mask = i < D
    LR = _tile(logR, D, BLOCK_D, -float("inf"))  # log|R_ij|, -inf off the matrix
    SR = _tile(sR, D, BLOCK_D, 1.0)
    l = tl.full([BLOCK_D], -float("inf"), tl.float32)
    s = tl.full([BLOCK_D], 1.0, tl.float32)
    if HAS_H0:
        l = tl.load(h0l + b * D + i, mask=mask, other=-float("inf")).to(tl.float32)
        s = tl.load(h0s + b * D + i, mask=mask, other=1.0).to(tl.float32)
    off = b.to(tl.int64) * T * D + i
    for _ in range(T):
        terms = LR + l[None, :]  # [i, j]
        signs = SR * s[None, :]
        m = tl.max(terms, axis=1)
        m = tl.where(m == -float("inf"), 0.0, m)
        e = tl.exp(terms - m[:, None])
        diff = tl.sum(tl.where(signs > 0, e, 0.0), axis=1) - tl.sum(tl.where(signs < 0, e, 0.0), axis=1)
        zero = diff == 0.0
        r_log = tl.where(zero, -float("inf"), m + tl.log(tl.where(zero, 1.0, tl.abs(diff))))
        r_sign = tl.where(diff < 0.0, -1.0, 1.0)
        ul, us = _sign_log(tl.load(u + off, mask=mask, other=0.0).to(tl.float32))
        z_log, z_sign = _slae(ul, us, r_log, r_sign)
        a = _log_tanh_abs(z_log)
        if HAS_GATE:
            g = tl.load(gate + off, mask=mask, other=0.0).to(tl.float32)
            l, s = _slae(_log_sigmoid(-g) + l, s, _log_sigmoid(g) + a, z_sign)
        else:
            l, s = a, z_sign
        l = tl.where(mask, l, -float("inf"))
        s = tl.where(mask, s, 1.0)
        tl.store(rl + off, r_log, mask=mask)
        tl.store(rs + off, r_sign, mask=mask)
        tl.store(zl + off, z_log, mask=mask)
        tl.store(zs + off, z_sign, mask=mask)
        tl.store(hl + off, l.to(hl.dtype.element_ty), mask=mask)
        tl.store(hs + off, s.to(hs.dtype.element_ty), mask=mask)
        off += D


@triton.jit
def _log_backward(u, R, gate, hl, hs, h0l, h0s, rl, rs, zl, zs, dhl, du, dgate, dh0l, dRb, T, D,
                  HAS_GATE: tl.constexpr, HAS_H0: tl.constexpr, BLOCK_D: tl.constexpr):
    b = tl.program_id(0)
    i = tl.arange(0, BLOCK_D)
    mask = i < D
    Rt = _tile(R, D, BLOCK_D, 0.0)
    dR = tl.zeros([BLOCK_D, BLOCK_D], dtype=tl.float32)
    carry = tl.zeros([BLOCK_D], dtype=tl.float32)  # dL/d log|h_t| from step t + 1
    base = b.to(tl.int64) * T * D
    for k in range(T):
        t = T - 1 - k
        off = base + t * D + i
        if t > 0:
            l = tl.load(hl + off - D, mask=mask, other=-float("inf")).to(tl.float32)
            s = tl.load(hs + off - D, mask=mask, other=1.0).to(tl.float32)
        elif HAS_H0:
            l = tl.load(h0l + b * D + i, mask=mask, other=-float("inf")).to(tl.float32)
            s = tl.load(h0s + b * D + i, mask=mask, other=1.0).to(tl.float32)
        else:
            l = tl.full([BLOCK_D], -float("inf"), tl.float32)
            s = tl.full([BLOCK_D], 1.0, tl.float32)
        gh = tl.load(dhl + off, mask=mask, other=0.0).to(tl.float32) + carry
        z_log = tl.load(zl + off, mask=mask, other=-float("inf"))
        z_sign = tl.load(zs + off, mask=mask, other=1.0)
        if HAS_GATE:
            g = tl.load(gate + off, mask=mask, other=0.0).to(tl.float32)
            g_keep, g_a = _slae_back(_log_sigmoid(-g) + l, s, _log_sigmoid(g) + _log_tanh_abs(z_log), z_sign, gh)
            d = sigmoid(g)
            tl.store(dgate + off, (-g_keep * d + g_a * (1.0 - d)).to(dgate.dtype.element_ty), mask=mask)
            carry = g_keep
        else:
            g_a = gh
            carry = tl.zeros([BLOCK_D], dtype=tl.float32)
        g_z = g_a * _log_tanh_abs_back(z_log)
        x = tl.load(u + off, mask=mask, other=0.0).to(tl.float32)
        ul, us = _sign_log(x)
        r_log = tl.load(rl + off, mask=mask, other=-float("inf"))
        r_sign = tl.load(rs + off, mask=mask, other=1.0)
        g_u, g_r = _slae_back(ul, us, r_log, r_sign, g_z)
        tl.store(du + off, tl.where(x == 0.0, 0.0, g_u / tl.where(x == 0.0, 1.0, x)).to(du.dtype.element_ty),
                 mask=mask)
        # d r_log_i / d R_ij = x_j / y_i = s_j r_sign_i exp(l_j - r_log_i); exact zeros pass nothing
        gi = tl.where(mask & (r_log > -float("inf")), g_r * r_sign, 0.0)
        r_safe = tl.where(r_log > -float("inf"), r_log, float("inf"))
        w = s[None, :] * tl.exp(l[None, :] - r_safe[:, None])  # [i, j]
        gw = gi[:, None] * w
        dR += gw
        carry += tl.sum(gw * Rt, axis=0)
        carry = tl.where(mask, carry, 0.0)
    tl.store(dh0l + b * D + i, carry, mask=mask)
    m2 = mask[:, None] & mask[None, :]
    tl.store(dRb + b.to(tl.int64) * D * D + i[:, None] * D + i[None, :], dR, mask=m2)


def _block(D: int) -> int:
    if D > MAX_D:
        raise ValueError(f"elman_scan[triton]: argument 'R' expected D <= {MAX_D} (R is held on chip per program), "
                         f"got D = {D}")
    return next_power_of_2(max(D, 1))


def _warps(block_d: int) -> int:
    """8 warps for the [128, 128] tile (64 float32 a thread per tile), 4 below. At 4 warps
    ptxas (Triton 3.9, sm_90 and sm_80) spilled 600 B to 14 KB a thread at D = 128; at 8
    the linear kernels fit (120 and 254 registers, no spill). 16 warps cap a thread at 128
    registers and spill the log-space kernels no less (48 and 240 B)."""
    return 8 if block_d >= 128 else 4


def _f32(t):
    return torch.empty((1,), dtype=torch.float32, device=t.device)


class _Linear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, R, gate, h0):
        u, R, gate, h0 = contiguous(u, R, gate, h0)
        B, T, D = u.shape
        h = new_output((B, T, D), u.dtype, u.device)
        c = torch.empty((B, T, D), dtype=torch.float32, device=u.device) if gate is not None else _f32(u)
        _linear_forward[(B,)](u, R, gate if gate is not None else u, h0 if h0 is not None else u, h, c, T, D,
                              HAS_GATE=gate is not None, HAS_H0=h0 is not None, BLOCK_D=_block(D),
                              num_warps=_warps(_block(D)))
        ctx.save_for_backward(R, gate, h, h0, c)
        ctx.flags = (gate is not None, h0 is not None)
        return h

    @staticmethod
    def backward(ctx, dh):
        R, gate, h, h0, c = ctx.saved_tensors
        has_gate, has_h0 = ctx.flags
        (dh,) = contiguous(dh)
        B, T, D = h.shape
        du = new_output((B, T, D), h.dtype, h.device)
        dgate = new_output((B, T, D), h.dtype, h.device) if has_gate else du
        dh0 = torch.empty((B, D), dtype=torch.float32, device=h.device)
        dRb = torch.empty((B, D, D), dtype=torch.float32, device=h.device)
        _linear_backward[(B,)](R, gate if has_gate else h, h, h0 if has_h0 else h, c, dh, du, dgate, dh0, dRb, T, D,
                               HAS_GATE=has_gate, HAS_H0=has_h0, BLOCK_D=_block(D),
                               num_warps=_warps(_block(D)))
        return du, dRb.sum(0).to(R.dtype), (dgate if has_gate else None), (dh0.to(h.dtype) if has_h0 else None)


class _Log(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, R, gate, h0_log, h0_sign):
        u, R, gate, h0_log, h0_sign = contiguous(u, R, gate, h0_log, h0_sign)
        B, T, D = u.shape
        R32 = R.float()
        zero = R32 == 0
        logR = torch.where(zero, float("-inf"), torch.log(torch.where(zero, 1.0, R32.abs())))
        sR = torch.where(R32 < 0, -1.0, 1.0)
        hl = new_output((B, T, D), u.dtype, u.device)
        hs = new_output((B, T, D), u.dtype, u.device)
        work = [torch.empty((B, T, D), dtype=torch.float32, device=u.device) for _ in range(4)]  # rl, rs, zl, zs
        has_h0 = h0_log is not None
        _log_forward[(B,)](u, logR, sR, gate if gate is not None else u, h0_log if has_h0 else u,
                           h0_sign if has_h0 else u, hl, hs, *work, T, D, HAS_GATE=gate is not None, HAS_H0=has_h0,
                           BLOCK_D=_block(D), num_warps=_warps(_block(D)))
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
        du = new_output((B, T, D), u.dtype, u.device)
        dgate = new_output((B, T, D), u.dtype, u.device) if has_gate else du
        dh0l = torch.empty((B, D), dtype=torch.float32, device=u.device)
        dRb = torch.empty((B, D, D), dtype=torch.float32, device=u.device)
        _log_backward[(B,)](u, R, gate if has_gate else u, hl, hs, h0_log if has_h0 else u, h0_sign if has_h0 else u,
                            *work, dhl, du, dgate, dh0l, dRb, T, D, HAS_GATE=has_gate, HAS_H0=has_h0,
                            BLOCK_D=_block(D), num_warps=_warps(_block(D)))
        return (du, dRb.sum(0).to(R.dtype), (dgate if has_gate else None), (dh0l.to(u.dtype) if has_h0 else None),
                None)


@implements("elman_scan", dtypes=(torch.float32,))
def elman_scan(u, R, gate=None, h0=None, log_space=False):
    _block(u.shape[2])
    if not log_space:
        return _Linear.apply(u, R, gate, h0)
    h0_log, h0_sign = (None, None) if h0 is None else h0
    return _Log.apply(u, R, gate, h0_log, h0_sign)
