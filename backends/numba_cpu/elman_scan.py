"""elman_scan, Numba CPU: one fused kernel for the whole forward, one for the whole
backward (BPTT inside the kernel), parallel over the batch rows (prange), SIMD over D.

Linear space (float32, the vectorisable ``special`` functions): per step R h_{t-1} as
D rows of R^T scaled by h_j and added into a [D] accumulator (contiguous, no reduction
to reassociate), then tanh, the gate's mix. The backward runs the reverse recurrence of
the contract's docstring per batch row, R^T dz as D rows of R scaled by dz_i; du = dz
for every (b, t), so R's gradient is one matrix product after the kernel,
dR = sum_{b,t} dz_{b,t} h_{b,t-1}^T (torch, blocked; no races, no per-thread copies).

Log space (float32 state in and out): R x for x = sign exp(x_log) is accumulated in
float64 as exp(m) R x~ with m = max_j x_log_j and x~_j = x_sign_j exp(x_log_j - m) in
[-1, 1]: D exps and a float64 matrix-vector product per step instead of the D^2 exps of
the per-row stable form. x~ comes from float32 exps while the state spans at most
NARROW = 80 (x~ >= e^-80 stays a float32 normal, exact in float64), from float64 exps
up to WIDE = 600 (x~_j >= 1e-261: |R_ij| x~_j cannot underflow for any nonzero float32
R_ij); a step whose state spans more takes the per-row stable form of the contract
(D^2 exps, that step only), so a state decayed far below float64's range stays right.
log|R x~| is taken in float32 but in float64 where |R x~| < 1e-30 (a deep cancellation
or tiny products). Exact zeros (R x~ = 0) are (-inf, +1) and pass no gradient. The
signed log-sums, log|tanh| and the clamp at 2^-126 follow the contract
(``backends/ops/elman_scan.py``) in float32, branch-free through the vectorisable
``special`` functions (scalar libm calls measured 9-80 ns each here and made the step 4x
slower). Each loop over D keeps to one float width and runs under error_model="numpy":
a float64 store beside the float32 special functions halved the vector width (step 1.75
-> 0.8 us per 64 units), and Python's division check kept a loop scalar.

Backward: every per-element piece of a step (the two signed log-sums, log|tanh|, the
gate's log-sigmoids) has a backward linear in the gradient g_h reaching log|h_t|, so the
forward writes its coefficients (du = g_h cu, dgate = g_h cg, the gate's carry g_h ck,
dL/d(R x~) = g_h cc with cc = cr / y~) and the backward runs no special function: per
step a few multiplies, R^T c in float64 (d r_log_i / d x_log_j = R_ij x~_j / y~_i) and
the carry. d r_log_i / d R_ij = x~_j / y~_i: the fast steps' part of dR is one matrix
product after the kernel (torch's, at its thread count: NumPy's BLAS started threads of
its own that spun for 80 ms a call beside the kernel's here).
"""

import math

import numpy as np
import torch
from numba import njit, prange

from backends.functions import apply
from backends.numba_cpu._blocks import FAST
from backends.numba_cpu._common import always_inline, as_array, empty_like, prefer_huge_pages, wide_vectors
from backends.numba_cpu.special import fexp, flog, flog1p, fsigmoid, ftanh
from backends.ops.elman_scan import TANH_SATURATED, TANH_SMALL, TINY
from backends.registry import implements, new_output

_ONE = np.float32(1.0)
NARROW = 80.0  # x_log spread up to which x~ is taken by float32 exps (e^-80 is a float32 normal)
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


@njit(cache=True, fastmath=FAST, error_model="numpy")
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


@njit(cache=True, fastmath=FAST, error_model="numpy")
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
        c = empty_like(h) if gated else h  # tanh(z_t); without a gate it is h itself
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
        du = prefer_huge_pages(empty_like(h))
        dgate = empty_like(h) if ctx.gated else du  # not written without a gate
        dh0 = empty_like(h0)
        h_arr = h.numpy()
        g_arr = as_array(gate) if ctx.gated else h_arr
        _backward(as_array(R), g_arr, h_arr, h0.numpy(), c.numpy(), as_array(dh), ctx.gated, du.numpy(),
                  dgate.numpy(), dh0.numpy())
        prev = torch.cat([h0[:, None], h[:, :-1]], 1)  # h_{t-1} [B, T, D]
        dR = du.reshape(-1, D).T @ prev.reshape(-1, D)  # sum_{b,t} dz_{b,t} h_{b,t-1}^T
        return du, dR, (dgate if ctx.gated else None), (dh0 if ctx.has_h0 else None)


# ---------------------------------------------------------------------------
# Log space: the contract's pieces per element in float32, branch-free and inlined (the
# loops over D vectorise through the ``special`` functions); R x accumulated in float64.
# The forward also writes the step's local derivatives (the backward of every per-element
# piece is linear in the incoming gradient), so the backward runs no special function.
# ---------------------------------------------------------------------------

_F = np.float32
_ZERO, _HALF, _TWO, _THREE = _F(0.0), _F(0.5), _F(2.0), _F(3.0)
_TINY, _SAT, _SMALL, _NEG_INF, _POS_INF = _F(TINY), _F(TANH_SATURATED), _F(TANH_SMALL), _F(-np.inf), _F(np.inf)
_NARROW = _F(NARROW)


@njit(cache=True, error_model="numpy")
def _slae(la, sa, lb, sb):
    """The contract's signed_logaddexp with its local derivatives: (log|x + y|, sign,
    d out / d la, d out / d lb): s exp(l - m) / r each, or under the clamp at 2^-126 (an
    exact cancellation) through the max only, as torch.maximum (all to the larger term,
    half to each of equal ones)."""
    always_inline()
    m = la if la >= lb else lb
    ms = _ZERO if m == _NEG_INF else m
    ea = sa * fexp(la - ms)
    eb = sb * fexp(lb - ms)
    r = ea + eb
    ar = abs(r)
    clamped = ar < _TINY
    inv = _ONE / (_ONE if clamped else r)
    tie = _HALF if la == lb else _ZERO
    wa = (_ONE if la > lb else tie) if clamped else ea * inv
    wb = (_ONE if lb > la else tie) if clamped else eb * inv
    return m + flog(_TINY if clamped else ar), (-_ONE if r < _ZERO else _ONE), wa, wb


@njit(cache=True, error_model="numpy")
def _log_tanh_abs(z_log):
    """(log|tanh z|, its derivative in log|z|) from log|z|: the value log|z| + log(tanh a / a),
    -a^2 / 3 for tiny a = |z|; the slope a (1 - tanh(a)^2) / tanh(a), 0 past the clamp."""
    always_inline()
    zc = _SAT if z_log > _SAT else z_log
    a = fexp(zc)
    small = a < _SMALL
    a_safe = _ONE if small else a
    th = ftanh(a_safe)
    value = zc + (-a * a / _THREE if small else flog(th / a_safe))
    slope = _ONE - _TWO * a * a / _THREE if small else a_safe * ((_ONE - th) * (_ONE + th)) / th
    return value, (_ZERO if z_log > _SAT else slope)


@njit(cache=True, fastmath=FAST, error_model="numpy")
def _log_matvec(l, s, RT, logR, sR, xt, y, rl, rs, scratch):
    """R x for x = s exp(l) [D] float32: rl, rs [D] float32 (log|R x|, sign). A fast step
    writes xt = x~ = s exp(l - m) and y = R x~ (float64 [D]; R x = exp(m) y, m = max l):
    x~ by float32 exps while the state spans at most NARROW (x~ then stays a float32
    normal), by float64 ones up to WIDE. A wider step takes the per-row stable form and
    writes xt = 0, y = rs (the backward's scale of each row is then exp(rl)). scratch
    [D] float32: each loop keeps to one float width (a float64 array beside float32
    arithmetic halves a loop's vector width). Returns True on a wide step."""
    wide_vectors()
    D = l.shape[0]
    m, lo = _NEG_INF, _POS_INF
    for j in range(D):
        lj = l[j]
        m = lj if lj > m else m
        lo = lj if lj < lo and lj > _NEG_INF else lo
    if m == _NEG_INF:  # x = 0: R x is an exact zero
        for i in range(D):
            xt[i], y[i], rl[i], rs[i] = 0.0, 0.0, _NEG_INF, _ONE
        return False
    if m - lo <= _NARROW:
        for j in range(D):
            scratch[j] = s[j] * fexp(l[j] - m)
        for j in range(D):
            xt[j] = scratch[j]
    elif m - lo <= WIDE:
        for j in range(D):
            xt[j] = s[j] * math.exp(np.float64(l[j]) - np.float64(m))
    else:
        _log_matvec_rows(l, s, logR, sR, rl, rs)
        for i in range(D):
            xt[i], y[i] = 0.0, rs[i]
        return True
    _rows_times(RT, xt, y)
    for i in range(D):
        yi = y[i]
        scratch[i] = abs(yi)
        rs[i] = -_ONE if yi < 0.0 else _ONE
    for i in range(D):
        rl[i] = m + flog(scratch[i])  # y = 0: -inf
    for i in range(D):  # |y| past float32's normals (a deep cancellation): the log in float64
        ay = abs(y[i])
        if ay < 1e-30 and ay > 0.0:
            rl[i] = np.float64(m) + math.log(ay)
    return False


@njit(cache=True, error_model="numpy")
def _log_matvec_rows(l, s, logR, sR, rl, rs):
    """The per-row stable form: terms log|R_ij| + l_j shifted by their maximum (float64)."""
    D = l.shape[0]
    for i in range(D):
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


@njit(cache=True, error_model="numpy")
def _input_sum(x, rl, rs):
    """z = u + R x for one element and its local derivatives: (z_log, z_sign, a, cu, cr)
    with a = log|tanh z|; per unit dL/da, du = cu and dL/d r_log = cr."""
    always_inline()
    z_log, z_sign, wu, wr = _slae(flog(abs(x)), (-_ONE if x < _ZERO else _ONE), rl, rs)
    a, slope = _log_tanh_abs(z_log)
    cu = _ZERO if x == _ZERO else slope * wu / x  # u = 0 passes no gradient
    return z_log, z_sign, a, cu, slope * wr


@njit(cache=True, fastmath=FAST, error_model="numpy")
def _log_step(u, rl, rs, l, s, hl, hs, cr, cu):
    """One step without a gate after R x: h_t = (log|tanh z|, sign z), z = u + R x; the
    state (l, s) in place and in hl, hs; the local derivatives for the backward, with g_h
    the gradient reaching log|h_t|: dL/d r_log = g_h cr, du = g_h cu. Arrays [D] float32
    (a float64 array in this loop would halve its vector width)."""
    wide_vectors()
    for i in range(u.shape[0]):
        z_log, z_sign, a, cu[i], cr[i] = _input_sum(u[i], rl[i], rs[i])
        l[i], s[i] = a, z_sign
        hl[i], hs[i] = a, z_sign


@njit(cache=True, fastmath=FAST, error_model="numpy")
def _log_step_gated(u, g, rl, rs, l, s, hl, hs, cr, cu, ck, cg):
    """As _log_step with the delta gate's signed log-sum after it: also dgate = g_h cg and
    the gate's part of dL/d log|h_{t-1}| = g_h ck."""
    wide_vectors()
    for i in range(u.shape[0]):
        z_log, z_sign, a, cu_i, cr_i = _input_sum(u[i], rl[i], rs[i])
        gi = g[i]
        e = fexp(-abs(gi))
        softplus = flog1p(e)  # log(1 + exp(-|g|)), shared by both log-sigmoids
        inv = _ONE / (_ONE + e)
        d = inv if gi >= _ZERO else e * inv  # sigmoid(g)
        keep, take = min(-gi, _ZERO) - softplus, min(gi, _ZERO) - softplus  # log(1 - d), log d
        nl, ns, wk, wt = _slae(keep + l[i], s[i], take + a, z_sign)
        ck[i] = wk
        cg[i] = wt * (_ONE - d) - wk * d
        cu[i] = wt * cu_i
        cr[i] = wt * cr_i
        l[i], s[i] = nl, ns
        hl[i], hs[i] = nl, ns


@njit(cache=True, fastmath=FAST, error_model="numpy")
def _per_unit_of_y(cr, y, cc):
    """cc = dL/d(R x~) per unit g_h = cr / y (float64 [D]; 0 where y = 0: an exact zero
    R x passes no gradient). On a wide step y = rs, so cc = cr rs."""
    wide_vectors()
    for i in range(cr.shape[0]):
        yi = y[i]
        cc[i] = np.float64(cr[i]) / yi if yi != 0.0 else 0.0


@njit(cache=True, parallel=True, error_model="numpy")
def _log_forward(u, RT, logR, sR, gate, h0l, h0s, gated, hl, hs, xt, rl, cc, cu, ck, cg, wide):
    # u, gate, hl, hs, rl, cu, ck, cg [B, T, D] float32; RT, logR, sR [D, D] float64; h0l,
    # h0s [B, D]; xt, cc [B, T, D] float64 (x~ and the R x coefficient); wide [B, T] bool
    B, T, D = u.shape
    for b in prange(B):
        l = h0l[b].copy()  # log|h_{t-1}|
        s = h0s[b].copy()
        y = np.empty(D, np.float64)  # R x~
        rs = np.empty(D, np.float32)
        cr = np.empty(D, np.float32)  # dL/d r_log per unit g_h
        scratch = np.empty(D, np.float32)
        for t in range(T):
            wide[b, t] = _log_matvec(l, s, RT, logR, sR, xt[b, t], y, rl[b, t], rs, scratch)
            if gated:
                _log_step_gated(u[b, t], gate[b, t], rl[b, t], rs, l, s, hl[b, t], hs[b, t], cr, cu[b, t], ck[b, t],
                                cg[b, t])
            else:
                _log_step(u[b, t], rl[b, t], rs, l, s, hl[b, t], hs[b, t], cr, cu[b, t])
            _per_unit_of_y(cr, y, cc[b, t])


@njit(cache=True, fastmath=FAST, error_model="numpy")
def _log_step_back(dh, cc, cu, carry, c, du):
    """g_h = dh + carry; c = dL/d(R x~) (float64) and du; carry <- 0 (R x's part of
    dL/d log|h_{t-1}| is added by the caller). Arrays [D]."""
    wide_vectors()
    for i in range(dh.shape[0]):
        gh = dh[i] + carry[i]
        c[i] = gh * cc[i]
        du[i] = gh * cu[i]
        carry[i] = _ZERO


@njit(cache=True, fastmath=FAST, error_model="numpy")
def _log_step_back_gated(dh, cc, cu, ck, cg, carry, c, du, dgate):
    """As _log_step_back, with dgate and carry <- the gate's part of dL/d log|h_{t-1}|."""
    wide_vectors()
    for i in range(dh.shape[0]):
        gh = dh[i] + carry[i]
        c[i] = gh * cc[i]
        du[i] = gh * cu[i]
        dgate[i] = gh * cg[i]
        carry[i] = gh * ck[i]


@njit(cache=True, parallel=True, error_model="numpy")
def _log_backward(R, hl, hs, h0l, h0s, xt, rl, cc, cu, ck, cg, wide, dhl, gated, du, dgate, dh0l, C, dR_wide):
    # as _log_forward; dhl, du, dgate [B, T, D] float32; dh0l [B, D]; R [D, D] float64;
    # C [B, T, D] float64: dL/d(R x~) of the fast steps (0 on wide steps); dR_wide [B, D, D]
    B, T, D = hl.shape
    for b in prange(B):
        carry = np.zeros(D, np.float32)  # dL/d log|h_t| from step t + 1
        rtc = np.empty(D, np.float64)
        for t in range(T - 1, -1, -1):
            if gated:
                _log_step_back_gated(dhl[b, t], cc[b, t], cu[b, t], ck[b, t], cg[b, t], carry, C[b, t], du[b, t],
                                     dgate[b, t])
            else:
                _log_step_back(dhl[b, t], cc[b, t], cu[b, t], carry, C[b, t], du[b, t])
            if not wide[b, t]:
                _rows_times(R, C[b, t], rtc)  # R^T c
                for j in range(D):
                    carry[j] += np.float32(xt[b, t, j] * rtc[j])
                continue
            l, s = (hl[b, t - 1], hs[b, t - 1]) if t > 0 else (h0l[b], h0s[b])
            for i in range(D):  # d r_log_i / d x_log_j = R_ij x_j / y_i, d r_log_i / d R_ij = x_j / y_i
                gi = C[b, t, i]  # c_i = dL/d r_log_i times sign(y_i)
                C[b, t, i] = 0.0
                if rl[b, t, i] == -math.inf:  # an exact zero passes no gradient
                    continue
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
        xt, cc = np.empty((B, T, D), np.float64), np.empty((B, T, D), np.float64)
        rl, cu = np.empty((B, T, D), np.float32), np.empty((B, T, D), np.float32)
        ck, cg = (np.empty((B, T, D), np.float32) for _ in range(2)) if gated else (cu, cu)  # not written ungated
        wide = np.empty((B, T), np.bool_)
        g_arr = as_array(gate) if gated else u_arr  # not read without a gate
        _log_forward(u_arr, np.ascontiguousarray(R64.T), logR, sR, g_arr, h0l, h0s, gated, hl.numpy(), hs.numpy(),
                     xt, rl, cc, cu, ck, cg, wide)
        ctx.save_for_backward(R, hl, hs)
        ctx.arrays = (R64, h0l, h0s, xt, rl, cc, cu, ck, cg, wide)
        ctx.gated, ctx.has_h0 = gated, h0_log is not None
        ctx.mark_non_differentiable(hs)
        return hl, hs

    @staticmethod
    def backward(ctx, dhl, _dhs):
        R, hl, hs = ctx.saved_tensors
        R64, h0l, h0s, xt, rl, cc, cu, ck, cg, wide = ctx.arrays
        B, T, D = hl.shape
        du = prefer_huge_pages(empty_like(hl))
        dgate = empty_like(hl) if ctx.gated else du  # not written without a gate
        dh0l = torch.empty((B, D), dtype=hl.dtype)
        C = np.empty((B, T, D), np.float64)
        dR_wide = np.zeros((B, D, D), np.float64)
        dhl_arr = as_array(dhl) if dhl is not None else np.zeros((B, T, D), np.float32)
        _log_backward(R64, hl.numpy(), hs.numpy(), h0l, h0s, xt, rl, cc, cu, ck, cg, wide, dhl_arr, ctx.gated,
                      du.numpy(), dgate.numpy(), dh0l.numpy(), C, dR_wide)
        # sum_{b,t} c_{b,t} x~_{b,t}^T by torch (its thread count; NumPy's BLAS would start
        # threads of its own, which spun for 80 ms a call beside the kernel's here)
        dR = torch.from_numpy(C).view(-1, D).T @ torch.from_numpy(xt).view(-1, D) + torch.from_numpy(dR_wide.sum(0))
        return (du, dR.to(R.dtype), (dgate if ctx.gated else None), (dh0l if ctx.has_h0 else None), None)


@implements("elman_scan", dtypes=(torch.float32,))
def elman_scan(u, R, gate=None, h0=None, log_space=False):
    if not log_space:
        return apply(_Linear, u, R, gate, h0)
    h0_log, h0_sign = (None, None) if h0 is None else h0
    return apply(_Log, u, R, gate, h0_log, h0_sign)
