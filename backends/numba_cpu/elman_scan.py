"""elman_scan, Numba CPU: one fused kernel for the whole forward, one for the whole
backward (BPTT inside the kernel), parallel over the batch rows (prange), SIMD over D.

Linear space (float32, the vectorisable ``special`` functions): per step R h_{t-1} as
D rows of R^T scaled by h_j and added into a [D] accumulator (contiguous, no reduction
to reassociate), then tanh, the gate's mix. The backward runs the reverse recurrence of
the contract's docstring per batch row, R^T dz as D rows of R scaled by dz_i; du = dz
for every (b, t), so R's gradient is one matrix product after the kernel,
dR = sum_{b,t} dz_{b,t} h_{b,t-1}^T (torch, blocked; no races, no per-thread copies).

Log space (float64 arithmetic, float32 state in and out): R x for x = sign exp(x_log)
is taken as exp(m) R x~ with m = max_j x_log_j and x~_j = x_sign_j exp(x_log_j - m) in
[-1, 1]: D exps and a float64 matrix-vector product per step instead of the D^2 exps of
the per-row stable form. It is exact to float64 rounding while every finite x_log_j is
within 600 of m (then x~_j >= 1e-261 and |R_ij| x~_j cannot underflow for any nonzero
float32 R_ij); a step whose state spans more than that (components more than e^600
apart) takes the per-row stable form of the contract instead (D^2 exps, that step
only), so a state decayed far below float64's range stays right. Exact zeros (R x~ = 0)
are (-inf, +1) and pass no gradient. The signed log-sums, log|tanh| and the clamp at
2^-126 follow the contract (``backends/ops/elman_scan.py``) line by line, in float64.
Backward in closed form: d r_log_i / d x_log_j = R_ij x~_j / y~_i, d r_log_i / d R_ij =
x~_j / y~_i; the fast steps' part of dR is again one matrix product after the kernel.
"""

import math

import numpy as np
import torch
from numba import njit, prange

from backends.numba_cpu._blocks import FAST
from backends.numba_cpu._common import as_array, prefer_huge_pages, wide_vectors
from backends.numba_cpu.special import fsigmoid, ftanh
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
# Log space, float64 arithmetic (the contract's pieces, one element at a time)
# ---------------------------------------------------------------------------


@njit(cache=True)
def _slae(la, sa, lb, sb):
    """The contract's signed_logaddexp: (log|x + y|, sign) with the clamp at 2^-126."""
    m = la if la >= lb else lb
    ms = 0.0 if m == -math.inf else m
    r = sa * math.exp(la - ms) + sb * math.exp(lb - ms)
    ar = abs(r)
    return m + math.log(TINY if ar < TINY else ar), (-1.0 if r < 0.0 else 1.0)


@njit(cache=True)
def _slae_back(la, sa, lb, sb, g):
    """(dL/dla, dL/dlb) of the signed log-sum given g = dL/dout: s exp(l - m) / r each,
    or under the clamp (an exact cancellation) through the max only, as torch.maximum."""
    m = la if la >= lb else lb
    ms = 0.0 if m == -math.inf else m
    ea = sa * math.exp(la - ms)
    eb = sb * math.exp(lb - ms)
    r = ea + eb
    if abs(r) < TINY:
        if la > lb:
            return g, 0.0
        if lb > la:
            return 0.0, g
        return 0.5 * g, 0.5 * g
    return g * ea / r, g * eb / r


@njit(cache=True)
def _log_tanh_abs(z_log):
    zc = TANH_SATURATED if z_log > TANH_SATURATED else z_log
    a = math.exp(zc)
    if a < TANH_SMALL:
        return zc - a * a / 3.0
    return zc + math.log(math.tanh(a) / a)


@njit(cache=True)
def _log_tanh_abs_back(z_log):
    """d log|tanh z| / d log|z|: a (1 - tanh(a)^2) / tanh(a), a = |z|; 0 past the clamp."""
    if z_log > TANH_SATURATED:
        return 0.0
    a = math.exp(z_log)
    if a < TANH_SMALL:
        return 1.0 - 2.0 * a * a / 3.0
    th = math.tanh(a)
    return a * ((1.0 - th) * (1.0 + th)) / th


@njit(cache=True)
def _log_sigmoid(x):
    return min(x, 0.0) - math.log1p(math.exp(-abs(x)))


@njit(cache=True)
def _sign_log(x):
    """(log|x|, sign x), 0 -> (-inf, +1)."""
    if x == 0.0:
        return -math.inf, 1.0
    return math.log(abs(x)), (-1.0 if x < 0.0 else 1.0)


@njit(cache=True)
def _log_matvec(l, s, RT, logR, sR, xt, yt, rl, rs):
    """R x for x = s exp(l) [D] (float64): rl, rs [D]; xt = x~, yt = R x~ (fast form).
    Returns True where the step took the per-row stable form (a state spread over more
    than WIDE)."""
    D = l.shape[0]
    m, lo = -math.inf, math.inf
    for j in range(D):
        if l[j] > m:
            m = l[j]
        if l[j] > -math.inf and l[j] < lo:
            lo = l[j]
    if m == -math.inf:  # x = 0: R x is an exact zero
        for i in range(D):
            xt[i], yt[i], rl[i], rs[i] = 0.0, 0.0, -math.inf, 1.0
        return False
    if m - lo <= WIDE:
        for j in range(D):
            xt[j] = s[j] * math.exp(l[j] - m)
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
            tij = logR[i, j] + l[j]
            if tij > mi:
                mi = tij
        total = 0.0
        if mi > -math.inf:
            for j in range(D):
                total += sR[i, j] * s[j] * math.exp(logR[i, j] + l[j] - mi)
        rl[i] = mi + math.log(abs(total)) if total != 0.0 else -math.inf
        rs[i] = -1.0 if total < 0.0 else 1.0
    return True


@njit(cache=True, parallel=True, error_model="numpy")
def _log_forward(u, RT, logR, sR, gate, h0l, h0s, gated, hl, hs, xt, yt, rl, rs, zl, zs, wide):
    # u, gate, hl, hs [B, T, D] float32; RT, logR, sR [D, D] float64; h0l, h0s [B, D];
    # xt, yt, rl, rs, zl, zs [B, T, D] float64 (kept for the backward); wide [B, T] bool
    B, T, D = u.shape
    for b in prange(B):
        l = h0l[b].astype(np.float64)  # log|h_{t-1}|, carried in float64
        s = h0s[b].astype(np.float64)
        nl = np.empty(D, np.float64)
        for t in range(T):
            wide[b, t] = _log_matvec(l, s, RT, logR, sR, xt[b, t], yt[b, t], rl[b, t], rs[b, t])
            for i in range(D):
                ul, us = _sign_log(np.float64(u[b, t, i]))
                z_log, z_sign = _slae(ul, us, rl[b, t, i], rs[b, t, i])
                zl[b, t, i], zs[b, t, i] = z_log, z_sign
                a = _log_tanh_abs(z_log)
                if gated:
                    g = np.float64(gate[b, t, i])
                    nl[i], s[i] = _slae(_log_sigmoid(-g) + l[i], s[i], _log_sigmoid(g) + a, z_sign)
                else:
                    nl[i], s[i] = a, z_sign
                hl[b, t, i], hs[b, t, i] = nl[i], s[i]
            l, nl = nl, l


@njit(cache=True, parallel=True, error_model="numpy")
def _log_backward(u, R, logR, sR, gate, hl, hs, h0l, h0s, xt, yt, rl, rs, zl, zs, wide, dhl, gated,
                  du, dgate, dh0l, C, dR_wide):
    # as _log_forward; dhl, du, dgate [B, T, D] float32; dh0l [B, D]; C [B, T, D] float64:
    # dL/dr_log / y~ of the fast steps (0 on wide steps); dR_wide [B, D, D] float64
    B, T, D = u.shape
    for b in prange(B):
        carry = np.zeros(D, np.float64)  # dL/d log|h_t| from step t + 1
        gr = np.empty(D, np.float64)  # dL/d r_log
        rtc = np.empty(D, np.float64)
        for t in range(T - 1, -1, -1):
            if t > 0:
                l, s = hl[b, t - 1], hs[b, t - 1]
            else:
                l, s = h0l[b], h0s[b]
            for i in range(D):
                g_h = np.float64(dhl[b, t, i]) + carry[i]
                z_log, z_sign = zl[b, t, i], zs[b, t, i]
                if gated:
                    g = np.float64(gate[b, t, i])
                    a = _log_tanh_abs(z_log)
                    g_keep, g_a = _slae_back(_log_sigmoid(-g) + l[i], s[i], _log_sigmoid(g) + a, z_sign, g_h)
                    d = 1.0 / (1.0 + math.exp(-g))
                    dgate[b, t, i] = -g_keep * d + g_a * (1.0 - d)
                    carry[i] = g_keep
                else:
                    g_a = g_h
                    carry[i] = 0.0
                g_z = g_a * _log_tanh_abs_back(z_log)
                x = np.float64(u[b, t, i])
                ul, us = _sign_log(x)
                g_u, gr[i] = _slae_back(ul, us, rl[b, t, i], rs[b, t, i], g_z)
                du[b, t, i] = g_u / x if x != 0.0 else 0.0
            if not wide[b, t]:
                for i in range(D):
                    y = yt[b, t, i]
                    C[b, t, i] = gr[i] / y if y != 0.0 else 0.0
                _rows_times(R, C[b, t], rtc)  # R^T c
                for j in range(D):
                    carry[j] += xt[b, t, j] * rtc[j]
            else:
                for i in range(D):
                    C[b, t, i] = 0.0
                    if rl[b, t, i] == -math.inf:  # an exact zero passes no gradient
                        continue
                    gi = gr[i] * rs[b, t, i]
                    for j in range(D):
                        w = s[j] * math.exp(np.float64(l[j]) - rl[b, t, i])  # x_j / |y_i|
                        dR_wide[b, i, j] += gi * w
                        carry[j] += gi * R[i, j] * w
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
        work = [np.empty((B, T, D), np.float64) for _ in range(6)]  # xt, yt, rl, rs, zl, zs
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
