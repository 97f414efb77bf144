"""banked_attention, Numba CUDA: one thread per (b, h) walks time; the state of its head
(S [N, Dk, Dv] and z [N, Dk]) lives in the output state tensors, which the thread owns
and updates in place (a dynamically indexed local array would need a compile-time size,
and would sit in the same L1-cached off-chip memory). Write, then read: for each bank
the state is updated and read back in the same sweep, o_t accumulates in its output row
and is divided by the denominator at the end of the step.

Parallelism is B * H threads, each doing N Dk (Dv + 1) work per step: correct and
simple, not fast on a GPU unless B * H is large (a block per (b, h) with threads over dv
is the next step).

Backward, with z as column Dv of an extended state S~ (v extended by a 1), dn_t the
gradient of the extended numerator (do_t / den_t, and dden_t = -do_t . o_t / den_t for
the z column), R_t = outer(p_r phi(q_t), dn_t) per bank, and G_t the gradient of S~_t:
- pass 1, forward in time, recomputing S~_t into scratch: den_t, dden_t (kept per
  token), dp_r[n] = phi(q) . S~_t[n] dn_t and dphi(q) = sum_n p_r[n] S~_t[n] dn_t;
- pass 2, reverse in time: G_t = R_t + gamma_{t+1} G_{t+1} (G starts from the final
  state's gradient), dv_t = sum_n p_w[n] G_t[n]^T phi(k), dphi(k) = sum_n p_w[n] G_t[n] v~,
  and dp_w[n] = phi(k) . G_t[n] v~ + (d gamma) gamma ln(lam_n); finally dS0 = gamma_0 G_0.
The decay term needs <G_t, S~_{t-1}>, which would mean keeping every step's state
(T N Dk (Dv + 1) floats per head). It does not: with X_t[n] = p_r[n] dp_r[n] = <R_t, S~_t>
(pass 1) and Y_t[n] = p_w[n] phi(k) . G_t[n] v~ = <G_t, W_t> (pass 2),
    gamma_t <G_t, S~_{t-1}> = <dS~_final, S~_final> + sum_{s >= t} (X_s - Y_s),
a suffix sum carried through pass 2. Scratch beyond the outputs: the recomputed state
(one state per (b, h)), X and (1/den, dden) per token, all O(B H N Dk Dv + B T H N).

decay_logits [H, N] or per token [B, T, H, N]: the kernels take a 4-d array
[B or 1, T or 1, H, N] and read row (b * per, t * per), per = 1 or 0; the decay's
gradient goes to the same row (per token, or summed over t in the thread's loop and
over B by the caller).
"""

import math

import numpy as np
import torch
from numba import cuda

from backends.numba_cuda._common import (BLOCK, ONE, ZERO, blocks, contiguous, launch, optional, output, sigmoid,
                                         sum_leading, zeros)
from backends.ops.banked_attention import EPS as _EPS
from backends.ops.banked_attention import check_decay
from backends.registry import implements

EPS = np.float32(_EPS)


@cuda.jit(device=True)
def _phi(u):
    """elu(u) + 1."""
    return u + ONE if u > 0 else math.exp(u)


@cuda.jit(device=True)
def _phi_grad(u):
    return ONE if u > 0 else math.exp(u)


@cuda.jit(device=True)
def _log_sigmoid(x):
    # (ZERO if ZERO < x else x) is min(x, ZERO): numba 0.68's CUDA target fails on the variadic min/max
    return (ZERO if ZERO < x else x) - math.log1p(math.exp(-abs(x)))


@cuda.jit(device=True)
def _decay_logit(decay, per, b, t, h, n):
    """decay_logits of token t, bank n of head (b, h): decay [B or 1, T or 1, H, N]."""
    return decay[b * per, t * per, h, n]


@cuda.jit(device=True)
def _softmax_stats(logits, b, t, h):
    """(max, sum of exp(l - max)) of logits[b, t, h, :]."""
    N = logits.shape[3]
    m = logits[b, t, h, 0]
    for n in range(1, N):
        v = logits[b, t, h, n]
        m = v if v > m else m  # max(m, v), written out (numba 0.68's CUDA max fails to compile)
    total = ZERO
    for n in range(N):
        total += math.exp(logits[b, t, h, n] - m)
    return m, total


@cuda.jit(device=True)
def _prob(logits, b, t, h, n, m, total):
    return math.exp(logits[b, t, h, n] - m) / total


@cuda.jit(device=True)
def _load_state(src_S, src_z, present, b, h, S, z):
    """S[b, h], z[b, h] = the given state (or zeros)."""
    N, Dk, Dv = S.shape[2], S.shape[3], S.shape[4]
    for n in range(N):
        for i in range(Dk):
            for c in range(Dv):
                S[b, h, n, i, c] = src_S[b, h, n, i, c] if present else ZERO
            z[b, h, n, i] = src_z[b, h, n, i] if present else ZERO


@cuda.jit(device=True)
def _advance(q, k, v, read_logits, write_logits, decay, per, b, t, h, S, z, num):
    """Step t of head (b, h): write token t into S[b, h], z[b, h] (in place), then read:
    num[b, t, h, :] = sum_n p_r[n] phi(q) S_t[n]; returns the denominator (with EPS)."""
    N, Dk, Dv = read_logits.shape[3], q.shape[3], v.shape[3]
    mr, sr = _softmax_stats(read_logits, b, t, h)
    mw, sw = _softmax_stats(write_logits, b, t, h)
    for c in range(Dv):
        num[b, t, h, c] = ZERO
    den = EPS
    for n in range(N):
        pr = _prob(read_logits, b, t, h, n, mr, sr)
        pw = _prob(write_logits, b, t, h, n, mw, sw)
        gamma = math.exp(pw * _log_sigmoid(_decay_logit(decay, per, b, t, h, n)))
        for i in range(Dk):
            fk = pw * _phi(k[b, t, h, i])
            fq = pr * _phi(q[b, t, h, i])
            for c in range(Dv):
                s = gamma * S[b, h, n, i, c] + fk * v[b, t, h, c]
                S[b, h, n, i, c] = s
                num[b, t, h, c] += fq * s
            s = gamma * z[b, h, n, i] + fk
            z[b, h, n, i] = s
            den += fq * s
    return den


@cuda.jit(cache=True)
def _forward(q, k, v, read_logits, write_logits, decay, per, S0, z0, has_state, o, S, z):
    # q, k: [B, T, H, Dk]; v, o: [B, T, H, Dv]; *_logits: [B, T, H, N]; decay: [B or 1, T or 1, H, N]
    # S0, S: [B, H, N, Dk, Dv]; z0, z: [B, H, N, Dk]
    B, T, H = q.shape[0], q.shape[1], q.shape[2]
    Dv = v.shape[3]
    idx = cuda.grid(1)
    if idx >= B * H:
        return
    b, h = idx // H, idx % H
    _load_state(S0, z0, has_state, b, h, S, z)
    for t in range(T):
        den = _advance(q, k, v, read_logits, write_logits, decay, per, b, t, h, S, z, o)
        for c in range(Dv):
            o[b, t, h, c] /= den


@cuda.jit(cache=True)
def _backward(q, k, v, read_logits, write_logits, decay, per, S0, z0, has_state, do, dS, dz,
              Sr, zr, X, dens, carry, dq, dk, dv, d_read, d_write, d_decay):
    # on entry dS, dz hold the final state's gradient; they end as the initial state's.
    # scratch: Sr, zr like S, z (the recomputed state); X: [B, T, H, N];
    # dens: [B, T, H, 2] (1/den, dden); carry: [B, H, N]; d_decay: like decay, zeroed by
    # the caller ([B, 1, H, N] summed over t here and over B later when per = 0)
    B, T, H, Dk = q.shape
    Dv, N = v.shape[3], read_logits.shape[3]
    idx = cuda.grid(1)
    if idx >= B * H:
        return
    b, h = idx // H, idx % H
    _load_state(S0, z0, has_state, b, h, Sr, zr)

    # pass 1: forward in time; gradients through the read (dv[b, t, h] holds the
    # numerator until pass 2 writes the gradient there)
    for t in range(T):
        den = _advance(q, k, v, read_logits, write_logits, decay, per, b, t, h, Sr, zr, dv)
        weighted = ZERO  # do_t . numerator_t
        for c in range(Dv):
            weighted += do[b, t, h, c] * dv[b, t, h, c]
        inv = ONE / den
        dden = -weighted * inv * inv
        dens[b, t, h, 0] = inv
        dens[b, t, h, 1] = dden
        for i in range(Dk):
            dq[b, t, h, i] = ZERO
        mr, sr = _softmax_stats(read_logits, b, t, h)
        dot = ZERO  # p_r . dp_r
        for n in range(N):
            pr = _prob(read_logits, b, t, h, n, mr, sr)
            dpr = ZERO
            for i in range(Dk):
                u = dden * zr[b, h, n, i]  # (S~_t[n] dn_t)_i
                for c in range(Dv):
                    u += Sr[b, h, n, i, c] * do[b, t, h, c] * inv
                dpr += _phi(q[b, t, h, i]) * u
                dq[b, t, h, i] += pr * u
            X[b, t, h, n] = pr * dpr
            d_read[b, t, h, n] = dpr
            dot += pr * dpr
        for n in range(N):
            d_read[b, t, h, n] = _prob(read_logits, b, t, h, n, mr, sr) * (d_read[b, t, h, n] - dot)
        for i in range(Dk):
            dq[b, t, h, i] *= _phi_grad(q[b, t, h, i])
    for n in range(N):  # <dS~_final, S~_final>
        acc = ZERO
        for i in range(Dk):
            for c in range(Dv):
                acc += dS[b, h, n, i, c] * Sr[b, h, n, i, c]
            acc += dz[b, h, n, i] * zr[b, h, n, i]
        carry[b, h, n] = acc

    # pass 2: reverse in time; G_t in dS, dz; gradients through the write and the decay
    for t in range(T - 1, -1, -1):
        mr, sr = _softmax_stats(read_logits, b, t, h)
        mw, sw = _softmax_stats(write_logits, b, t, h)
        mw1, sw1 = mw, sw  # the next step's write statistics (unused at t = T - 1)
        if t + 1 < T:
            mw1, sw1 = _softmax_stats(write_logits, b, t + 1, h)
        inv, dden = dens[b, t, h, 0], dens[b, t, h, 1]
        for i in range(Dk):
            dk[b, t, h, i] = ZERO
        for c in range(Dv):
            dv[b, t, h, c] = ZERO
        dot = ZERO  # p_w . dp_w
        for n in range(N):
            pr = _prob(read_logits, b, t, h, n, mr, sr)
            pw = _prob(write_logits, b, t, h, n, mw, sw)
            x = _decay_logit(decay, per, b, t, h, n)
            log_lam = _log_sigmoid(x)
            decay_next = ONE
            if t + 1 < T:
                log_lam_next = _log_sigmoid(_decay_logit(decay, per, b, t + 1, h, n))
                decay_next = math.exp(_prob(write_logits, b, t + 1, h, n, mw1, sw1) * log_lam_next)
            dpw = ZERO  # phi(k) . G_t[n] v~
            for i in range(Dk):
                fq = pr * _phi(q[b, t, h, i])
                fk = _phi(k[b, t, h, i])
                row = ZERO  # (G_t[n] v~)_i
                for c in range(Dv):
                    g = decay_next * dS[b, h, n, i, c] + fq * do[b, t, h, c] * inv
                    dS[b, h, n, i, c] = g
                    row += g * v[b, t, h, c]
                    dv[b, t, h, c] += pw * fk * g
                g = decay_next * dz[b, h, n, i] + fq * dden
                dz[b, h, n, i] = g
                row += g
                dpw += fk * row
                dk[b, t, h, i] += pw * row
            carry[b, h, n] += X[b, t, h, n] - pw * dpw
            decay_term = carry[b, h, n]  # gamma_t d gamma_t
            dpw += decay_term * log_lam
            d_write[b, t, h, n] = dpw
            dot += pw * dpw
            d_decay[b, t * per, h, n] += decay_term * pw * sigmoid(-x)
        for n in range(N):
            d_write[b, t, h, n] = _prob(write_logits, b, t, h, n, mw, sw) * (d_write[b, t, h, n] - dot)
        for i in range(Dk):
            dk[b, t, h, i] *= _phi_grad(k[b, t, h, i])

    # dS0 = gamma_0 G_0
    mw, sw = _softmax_stats(write_logits, b, 0, h)
    for n in range(N):
        gamma = math.exp(_prob(write_logits, b, 0, h, n, mw, sw) * _log_sigmoid(_decay_logit(decay, per, b, 0, h, n)))
        for i in range(Dk):
            for c in range(Dv):
                dS[b, h, n, i, c] *= gamma
            dz[b, h, n, i] *= gamma


class _Banked(torch.autograd.Function):
    @staticmethod
    def forward(ctx, per_token, q, k, v, read_logits, write_logits, decay_logits, S0, z0):
        q, k, v, read_logits, write_logits = contiguous(q, k, v, read_logits, write_logits)
        decay_logits, = contiguous(decay_logits if per_token else decay_logits[None, None])  # [B or 1, T or 1, H, N]
        (B, T, H, Dk), Dv, N = q.shape, v.shape[3], read_logits.shape[3]
        S0, has_state = optional(S0, q, 5)
        z0, _ = optional(z0, q, 4)
        o, S, z = output((B, T, H, Dv), q), output((B, H, N, Dk, Dv), q), output((B, H, N, Dk), q)
        launch(_forward, blocks(B * H), BLOCK, q, k, v, read_logits, write_logits, decay_logits, int(per_token),
               S0, z0, has_state, o, S, z)
        ctx.save_for_backward(q, k, v, read_logits, write_logits, decay_logits, S0, z0)
        ctx.has_state, ctx.per_token = has_state, per_token
        return o, S, z

    @staticmethod
    def backward(ctx, do, dS_final, dz_final):
        q, k, v, read_logits, write_logits, decay_logits, S0, z0 = ctx.saved_tensors
        (B, T, H, Dk), Dv, N = q.shape, v.shape[3], read_logits.shape[3]
        do = do.contiguous()
        dS, dz = dS_final.contiguous().clone(), dz_final.contiguous().clone()  # become dS0, dz0 in place
        Sr, zr = output((B, H, N, Dk, Dv), q), output((B, H, N, Dk), q)
        X, dens, carry = output((B, T, H, N), q), output((B, T, H, 2), q), output((B, H, N), q)
        dq, dk, dv = output(q.shape, q), output(k.shape, q), output(v.shape, q)
        d_read, d_write = output(read_logits.shape, q), output(write_logits.shape, q)
        d_decay = zeros((B, *decay_logits.shape[1:]), q)  # [B, T or 1, H, N]
        launch(_backward, blocks(B * H), BLOCK, q, k, v, read_logits, write_logits, decay_logits, int(ctx.per_token),
               S0, z0, ctx.has_state, do, dS, dz, Sr, zr, X, dens, carry, dq, dk, dv, d_read, d_write, d_decay)
        dstate = (dS, dz) if ctx.has_state else (None, None)
        d_decay = d_decay if ctx.per_token else sum_leading(d_decay[:, 0])  # [B, T, H, N] or [H, N]
        return None, dq, dk, dv, d_read, d_write, d_decay, *dstate


@implements("banked_attention", dtypes=(torch.float32,))
def banked_attention(q, k, v, read_logits, write_logits, decay_logits, state=None):
    per_token = check_decay("numba_cuda", q, decay_logits)
    S0, z0 = state if state is not None else (None, None)
    o, S, z = _Banked.apply(per_token, q, k, v, read_logits, write_logits, decay_logits, S0, z0)
    return o, (S, z)
