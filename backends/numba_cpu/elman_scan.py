"""elman_scan, Numba CPU: one fused kernel for the whole forward, one for the whole
backward (BPTT inside the kernel), parallel over the batch rows (prange), SIMD over D.

Linear space (float32, the vectorisable ``special`` functions): per step R h_{t-1} as
D rows of R^T scaled by h_j and added into a [D] accumulator (contiguous, no reduction
to reassociate), then tanh, the gate's mix. The backward runs the reverse recurrence of
the contract's docstring per batch row, R^T dz as D rows of R scaled by dz_i; du = dz
for every (b, t), so R's gradient is one matrix product after the kernel,
dR = sum_{b,t} dz_{b,t} h_{b,t-1}^T (torch, blocked; no races, no per-thread copies).

Log space (float32 state in and out): R x for x = sign exp(x_log) is taken in float64
as exp(m) R x~ with m = max_j x_log_j and x~_j = x_sign_j exp(x_log_j - m) in [-1, 1]:
D exps and a float64 matrix-vector product per step instead of the D^2 exps of the
per-row stable form. It is exact to float64 rounding while every finite x_log_j is
within 600 of m (then x~_j >= 1e-261 and |R_ij| x~_j cannot underflow for any nonzero
float32 R_ij); a step whose state spans more than that (components more than e^600
apart) takes the per-row stable form of the contract instead (D^2 exps, that step
only), so a state decayed far below float64's range stays right. Exact zeros (R x~ = 0)
are (-inf, +1) and pass no gradient. The signed log-sums, log|tanh| and the clamp at
2^-126 follow the contract (``backends/ops/elman_scan.py``) line by line in float32,
branch-free through the vectorisable ``special`` functions (the loops over D vectorise;
scalar libm calls measured 9-80 ns each here and made the step 4x slower).
Backward in closed form: d r_log_i / d x_log_j = R_ij x~_j / y~_i, d r_log_i / d R_ij =
x~_j / y~_i; the fast steps' part of dR is again one matrix product after the kernel.
"""

import math

import numpy as np
import torch
from numba import njit, prange

from backends.numba_cpu._blocks import FAST
from backends.numba_cpu._common import always_inline, as_array, prefer_huge_pages, wide_vectors
from backends.numba_cpu.special import fexp, flog, flog1p, fsigmoid, ftanh
from backends.ops.elman_scan import TANH_SATURATED, TANH_SMALL, TINY
from backends.registry import implements, new_output

_ONE = np.float32(1.0)
WIDE = 600.0  # x_log spread above which a step takes the per-row stable form (see above)


# ---------------------------------------------------------------------------
# Linear space, float32
# ---------------------------------------------------------------------------


@njit(cache=True, fastmath=FAST)
def _rows_times(M, x, y):
    """y[:] = sum_j M[j, :] x[j]: M^T x for M [J, D] with contiguous rows, y [D]."""
    wide_vectors()
    D = y.shape[0]
    for i in range(D):
        y[i] = 0.0
    for j in range(M.shape[0]):
        xj = x[j]
        for i in range(D):
            y[i] += M[j, i] * xj


@njit(cache=True, parallel=True, error_model="numpy")
def _forward(u, RT, gate, h0, gated, h, c):
    # u, gate, h, c [B, T, D] (c: tanh(z_t), kept for the backward when gated); RT [D, D] = R^T; h0 [B, D]
    B, T, D = u.shape
    for b in prange(B):
        state = h0[b].copy()  # h_{t-1} [D]
        y = np.empty(D, np.float32)
        for t in range(T):
            _rows_times(RT, state, y)  # R h_{t-1}
            _linear_step(u[b, t], gate[b, t], y, state, gated, h[b, t], c[b, t])


@njit(cache=True, fastmath=FAST)
def _linear_step(u, g, y, state, gated, h, c):
    wide_vectors()
    for i in range(u.shape[0]):
        ct = ftanh(u[i] + y[i])
        if gated:
            c[i] = ct
            s = state[i] + fsigmoid(g[i]) * (ct - state[i])
        else:
            s = ct
        state[i] = s
        h[i] = s


@njit(cache=True, parallel=True, error_model="numpy")
def _backward(R, gate, h, h0, c, dh, gated, du, dgate, dh0):
    # R [D, D]; gate, h, c, dh, du, dgate [B, T, D]; h0, dh0 [B, D]
    B, T, D = h.shape
    for b in prange(B):
        carry = np.zeros(D, np.float32)  # dL/dh_t from step t + 1
        rt = np.empty(D, np.float32)
        for t in range(T - 1, -1, -1):
            prev = h[b, t - 1] if t > 0 else h0[b]
            _linear_step_back(gate[b, t], h[b, t], prev, c[b, t], dh[b, t], carry, gated, du[b, t], dgate[b, t])
            _rows_times(R, du[b, t], rt)  # R^T dz_t
            for i in range(D):
                carry[i] += rt[i]
        for i in range(D):
            dh0[b, i] = carry[i]


@njit(cache=True, fastmath=FAST)
def _linear_step_back(g, h, prev, c, dh, carry, gated, dz, dgate):
    """dz_t and dgate_t from g_t = dh_t + carry; carry <- g_t (1 - d_t) (R^T dz_t added by
    the caller)."""
    wide_vectors()
    for i in range(dh.shape[0]):
        gt = dh[i] + carry[i]
        if gated:
            d = fsigmoid(g[i])
            ct = c[i]
            dz[i] = gt * d * ((_ONE - ct) * (_ONE + ct))
            dgate[i] = gt * (ct - prev[i]) * d * (_ONE - d)
            carry[i] = gt * (_ONE - d)
        else:
            ct = h[i]
            dz[i] = gt * ((_ONE - ct) * (_ONE + ct))
            carry[i] = 0.0


class _Linear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, R, gate, h0):
        B, T, D = u.shape
        gated = gate is not None
        u_arr = as_array(u)
        h = prefer_huge_pages(new_output((B, T, D), u.dtype, u.device))
        c = torch.empty_like(h) if gated else h  # tanh(z_t); without a gate it is h itself
        h0_t = h0.detach().contiguous() if h0 is not None else u.new_zeros(B, D)
        g_arr = as_array(gate) if gated else u_arr  # not read without a gate
        _forward(u_arr, np.ascontiguousarray(as_array(R).T), g_arr, h0_t.numpy(), gated, h.numpy(), c.numpy())
        ctx.save_for_backward(R, gate, h, h0_t, c)
        ctx.gated, ctx.has_h0 = gated, h0 is not None
        return h

    @staticmethod
    def backward(ctx, dh):
        R, gate, h, h0, c = ctx.saved_tensors
        D = h.shape[2]
        du = prefer_huge_pages(torch.empty_like(h))
        dgate = torch.empty_like(h) if ctx.gated else du  # not written without a gate
        dh0 = torch.empty_like(h0)
        h_arr = h.numpy()
        g_arr = as_array(gate) if ctx.gated else h_arr
        _backward(as_array(R), g_arr, h_arr, h0.numpy(), c.numpy(), as_array(dh), ctx.gated, du.numpy(),
                  dgate.numpy(), dh0.numpy())
        prev = torch.cat([h0[:, None], h[:, :-1]], 1)  # h_{t-1} [B, T, D]
        dR = du.reshape(-1, D).T @ prev.reshape(-1, D)  # sum_{b,t} dz_{b,t} h_{b,t-1}^T
        return du, dR, (dgate if ctx.gated else None), (dh0 if ctx.has_h0 else None)


# ---------------------------------------------------------------------------
# Log space: the contract's pieces per element in float32, branch-free and inlined (the
# loops over D vectorise through the ``special`` functions); R x in float64
# ---------------------------------------------------------------------------

_F = np.float32
_ZERO, _HALF, _TWO, _THREE = _F(0.0), _F(0.5), _F(2.0), _F(3.0)
_TINY, _SAT, _SMALL, _NEG_INF = _F(TINY), _F(TANH_SATURATED), _F(TANH_SMALL), _F(-np.inf)


@njit(cache=True)
def _slae(la, sa, lb, sb):
    """The contract's signed_logaddexp: (log|x + y|, sign) with the clamp at 2^-126."""
    always_inline()
    m = la if la >= lb else lb
    ms = _ZERO if m == _NEG_INF else m
    r = sa * fexp(la - ms) + sb * fexp(lb - ms)
    ar = abs(r)
    return m + flog(_TINY if ar < _TINY else ar), (-_ONE if r < _ZERO else _ONE)


@njit(cache=True)
def _slae_back(la, sa, lb, sb, g):
    """(dL/dla, dL/dlb) of the signed log-sum given g = dL/dout: s exp(l - m) / r each,
    or under the clamp (an exact cancellation) through the max only, as torch.maximum."""
    always_inline()
    m = la if la >= lb else lb
    ms = _ZERO if m == _NEG_INF else m
    ea = sa * fexp(la - ms)
    eb = sb * fexp(lb - ms)
    r = ea + eb
    clamped = abs(r) < _TINY
    inv = _ONE / (_ONE if clamped else r)
    tie = _HALF * g if la == lb else _ZERO
    ga = (g if la > lb else tie) if clamped else g * ea * inv
    gb = (g if lb > la else tie) if clamped else g * eb * inv
    return ga, gb


@njit(cache=True)
def _log_tanh_abs(z_log):
    always_inline()
    zc = _SAT if z_log > _SAT else z_log
    a = fexp(zc)
    small = a < _SMALL
    a_safe = _ONE if small else a
    big = flog(ftanh(a_safe) / a_safe)
    return zc + (-a * a / _THREE if small else big)


@njit(cache=True)
def _log_tanh_abs_back(z_log):
    """d log|tanh z| / d log|z|: a (1 - tanh(a)^2) / tanh(a), a = |z|; 0 past the clamp."""
    always_inline()
    a = fexp(_SAT if z_log > _SAT else z_log)
    small = a < _SMALL
    a_safe = _ONE if small else a
    th = ftanh(a_safe)
    slope = _ONE - _TWO * a * a / _THREE if small else a_safe * ((_ONE - th) * (_ONE + th)) / th
    return _ZERO if z_log > _SAT else slope


@njit(cache=True)
def _log_sigmoid(x):
    always_inline()
    return min(x, _ZERO) - flog1p(fexp(-abs(x)))


@njit(cache=True)
def _log_matvec(l, s, RT, logR, sR, xt, yt, rl, rs):
    """R x for x = s exp(l) [D] (float32 in, float64 arithmetic): rl, rs [D] (float32);
    xt = x~, yt = R x~ (float64, the fast form).
    Returns True where the step took the per-row stable form (a state spread over more
    than WIDE)."""
    D = l.shape[0]
    m, lo = -math.inf, math.inf
    for j in range(D):
        lj = np.float64(l[j])
        if lj > m:
            m = lj
        if lj > -math.inf and lj < lo:
            lo = lj
    if m == -math.inf:  # x = 0: R x is an exact zero
        for i in range(D):
            xt[i], yt[i], rl[i], rs[i] = 0.0, 0.0, -math.inf, 1.0
        return False
    if m - lo <= WIDE:
        for j in range(D):
            xt[j] = s[j] * math.exp(np.float64(l[j]) - m)
        _rows_times(RT, xt, yt)
        for i in range(D):
            y = yt[i]
            rl[i] = m + math.log(abs(y)) if y != 0.0 else -math.inf
            rs[i] = -1.0 if y < 0.0 else 1.0
        return False
    for i in range(D):  # per row: terms log|R_ij| + l_j, shifted by their maximum
        xt[i], yt[i] = 0.0, 0.0
        mi = -math.inf
        for j in range(D):
            tij = logR[i, j] + np.float64(l[j])
            if tij > mi:
                mi = tij
        total = 0.0
        if mi > -math.inf:
            for j in range(D):
                total += sR[i, j] * s[j] * math.exp(logR[i, j] + np.float64(l[j]) - mi)
        rl[i] = mi + math.log(abs(total)) if total != 0.0 else -math.inf
        rs[i] = -1.0 if total < 0.0 else 1.0
    return True


@njit(cache=True, fastmath=FAST)
def _log_step(u, g, l, s, rl, rs, gated, zl, zs, hl, hs):
    """One step after R x: z = u + R x, a = log|tanh z|, the gate's mix; the new state
    (l, s) in place and in hl, hs. Every array [D] float32."""
    wide_vectors()
    for i in range(u.shape[0]):
        x = u[i]
        z_log, z_sign = _slae(flog(abs(x)), (-_ONE if x < _ZERO else _ONE), rl[i], rs[i])
        zl[i], zs[i] = z_log, z_sign
        a = _log_tanh_abs(z_log)
        if gated:
            gi = g[i]
            nl, ns = _slae(_log_sigmoid(-gi) + l[i], s[i], _log_sigmoid(gi) + a, z_sign)
        else:
            nl, ns = a, z_sign
        l[i], s[i] = nl, ns
        hl[i], hs[i] = nl, ns


@njit(cache=True, parallel=True, error_model="numpy")
def _log_forward(u, RT, logR, sR, gate, h0l, h0s, gated, hl, hs, xt, yt, rl, rs, zl, zs, wide):
    # u, gate, hl, hs, rl, rs, zl, zs [B, T, D] float32; RT, logR, sR [D, D] float64;
    # h0l, h0s [B, D]; xt, yt [B, T, D] float64 (kept for the backward); wide [B, T] bool
    B, T, D = u.shape
    for b in prange(B):
        l = h0l[b].copy()  # log|h_{t-1}|
        s = h0s[b].copy()
        for t in range(T):
            wide[b, t] = _log_matvec(l, s, RT, logR, sR, xt[b, t], yt[b, t], rl[b, t], rs[b, t])
            _log_step(u[b, t], gate[b, t], l, s, rl[b, t], rs[b, t], gated, zl[b, t], zs[b, t], hl[b, t], hs[b, t])


@njit(cache=True, fastmath=FAST)
def _log_step_back(u, g, l, s, rl, rs, zl, zs, dhl, carry, gr, gated, du, dgate):
    """The step's elementwise backward: gr = dL/d r_log, du, dgate; carry <- the gate's
    part of dL/d log|h_{t-1}| (R x's part is added by the caller). Arrays [D] float32."""
    wide_vectors()
    for i in range(u.shape[0]):
        g_h = dhl[i] + carry[i]
        z_log, z_sign = zl[i], zs[i]
        if gated:
            gi = g[i]
            g_keep, g_a = _slae_back(_log_sigmoid(-gi) + l[i], s[i], _log_sigmoid(gi) + _log_tanh_abs(z_log),
                                     z_sign, g_h)
            d = fsigmoid(gi)
            dgate[i] = -g_keep * d + g_a * (_ONE - d)
            carry[i] = g_keep
        else:
            g_a = g_h
            carry[i] = _ZERO
        g_z = g_a * _log_tanh_abs_back(z_log)
        x = u[i]
        g_u, gr[i] = _slae_back(flog(abs(x)), (-_ONE if x < _ZERO else _ONE), rl[i], rs[i], g_z)
        du[i] = _ZERO if x == _ZERO else g_u / x  # u = 0 passes no gradient


@njit(cache=True, parallel=True, error_model="numpy")
def _log_backward(u, R, logR, sR, gate, hl, hs, h0l, h0s, xt, yt, rl, rs, zl, zs, wide, dhl, gated,
                  du, dgate, dh0l, C, dR_wide):
    # as _log_forward; dhl, du, dgate [B, T, D] float32; dh0l [B, D]; R [D, D] float64;
    # C [B, T, D] float64: dL/dr_log / y~ of the fast steps (0 on wide steps); dR_wide [B, D, D]
    B, T, D = u.shape
    for b in prange(B):
        carry = np.zeros(D, np.float32)  # dL/d log|h_t| from step t + 1
        gr = np.empty(D, np.float32)  # dL/d r_log
        rtc = np.empty(D, np.float64)
        for t in range(T - 1, -1, -1):
            l, s = (hl[b, t - 1], hs[b, t - 1]) if t > 0 else (h0l[b], h0s[b])
            _log_step_back(u[b, t], gate[b, t], l, s, rl[b, t], rs[b, t], zl[b, t], zs[b, t], dhl[b, t], carry, gr,
                           gated, du[b, t], dgate[b, t])
            if not wide[b, t]:
                for i in range(D):
                    y = yt[b, t, i]
                    C[b, t, i] = gr[i] / y if y != 0.0 else 0.0
                _rows_times(R, C[b, t], rtc)  # R^T c
                for j in range(D):
                    carry[j] += np.float32(xt[b, t, j] * rtc[j])
            else:
                for i in range(D):
                    C[b, t, i] = 0.0
                    if rl[b, t, i] == -math.inf:  # an exact zero passes no gradient
                        continue
                    gi = np.float64(gr[i]) * rs[b, t, i]
                    for j in range(D):
                        w = s[j] * math.exp(np.float64(l[j]) - rl[b, t, i])  # x_j / |y_i|
                        dR_wide[b, i, j] += gi * w
                        carry[j] += np.float32(gi * R[i, j] * w)
        for j in range(D):
            dh0l[b, j] = carry[j]


class _Log(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, R, gate, h0_log, h0_sign):
        B, T, D = u.shape
        gated = gate is not None
        u_arr = as_array(u)
        R64 = as_array(R).astype(np.float64)
        with np.errstate(divide="ignore"):
            logR = np.log(np.abs(R64))
        sR = np.where(R64 < 0, -1.0, 1.0)
        if h0_log is None:
            h0l, h0s = np.full((B, D), -np.inf, np.float32), np.ones((B, D), np.float32)
        else:
            h0l, h0s = as_array(h0_log), as_array(h0_sign)
        hl = prefer_huge_pages(new_output((B, T, D), u.dtype, u.device))
        hs = new_output((B, T, D), u.dtype, u.device)
        work = [np.empty((B, T, D), np.float64) for _ in range(2)] + \
            [np.empty((B, T, D), np.float32) for _ in range(4)]  # xt, yt (float64); rl, rs, zl, zs
        wide = np.empty((B, T), np.bool_)
        g_arr = as_array(gate) if gated else u_arr
        _log_forward(u_arr, np.ascontiguousarray(R64.T), logR, sR, g_arr, h0l, h0s, gated, hl.numpy(), hs.numpy(),
                     *work, wide)
        ctx.save_for_backward(u, R, gate, hl, hs)
        ctx.arrays = (R64, logR, sR, g_arr, h0l, h0s, work, wide)
        ctx.gated, ctx.has_h0 = gated, h0_log is not None
        ctx.mark_non_differentiable(hs)
        return hl, hs

    @staticmethod
    def backward(ctx, dhl, _dhs):
        u, R, gate, hl, hs = ctx.saved_tensors
        R64, logR, sR, g_arr, h0l, h0s, work, wide = ctx.arrays
        B, T, D = u.shape
        du = prefer_huge_pages(torch.empty_like(u))
        dgate = torch.empty_like(u) if ctx.gated else du  # not written without a gate
        dh0l = torch.empty((B, D), dtype=u.dtype)
        C = np.empty((B, T, D), np.float64)
        dR_wide = np.zeros((B, D, D), np.float64)
        dhl_arr = as_array(dhl) if dhl is not None else np.zeros((B, T, D), np.float32)
        _log_backward(as_array(u), R64, logR, sR, g_arr, hl.numpy(), hs.numpy(), h0l, h0s, *work, wide, dhl_arr,
                      ctx.gated, du.numpy(), dgate.numpy(), dh0l.numpy(), C, dR_wide)
        xt = work[0]
        dR = C.reshape(-1, D).T @ xt.reshape(-1, D) + dR_wide.sum(0)  # sum_{b,t} c_{b,t} x~_{b,t}^T
        return (du, torch.from_numpy(dR).to(R.dtype), (dgate if ctx.gated else None),
                (dh0l if ctx.has_h0 else None), None)


@implements("elman_scan", dtypes=(torch.float32,))
def elman_scan(u, R, gate=None, h0=None, log_space=False):
    if not log_space:
        return _Linear.apply(u, R, gate, h0)
    h0_log, h0_sign = (None, None) if h0 is None else h0
    return _Log.apply(u, R, gate, h0_log, h0_sign)
