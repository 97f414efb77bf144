"""banked_attention, Numba CPU: the recurrent form, parallel over the B * H heads.

Each head keeps its N banks' state S [N, Dk, Dv] and z [N, Dk] in a local buffer that
stays in L1, and walks t in order: per bank and key row one fused pass updates the
state row (write) and adds it into the read (write, then read, as the contract says).

Backward: the reverse-time recurrence of the adjoints dS_t, dz_t (the gradient of the
loss with respect to the state after step t):
    dS_t += p_r[t,n] outer(phi(q_t), dnum_t),  dz_t += p_r[t,n] dden_t phi(q_t)
    dgamma_t,n = <dS_t, S_{t-1}> + <dz_t, z_{t-1}>,  dS_{t-1} = gamma_t,n dS_t
with dnum_t = do_t / den_t and dden_t = -do_t . o_t / den_t. It needs S_{t-1}, so the
forward (when a gradient is wanted) saves the state every CHUNK steps, and the backward
recomputes each chunk's states into a CHUNK-deep buffer (L2-sized) before walking the
chunk in reverse: one extra forward instead of T stored states.
gamma = lam ** p_w = exp(p_w log lam) with log lam = -softplus(-decay_logits).

decay_logits [H, N] or per token [B, T, H, N]: the kernels take it as a 4-d array
[B or 1, T or 1, H, N] and read row (b * per, t * per) with per = 1 or 0, so both
layouts are one code path; log lam is formed per token with the other per-token
quantities (N log-sigmoids a token, against N Dk Dv multiply-adds of the state). The
gradient of a per-token decay is written per token; an [H, N] one is summed over t in
the head's loop and over B by the caller.
"""

import math

import numpy as np
import torch
from numba import njit, prange

from backends.functions import apply, records_graph
from backends.numba_cpu._blocks import FAST
from backends.numba_cpu._common import as_array, empty_like
from backends.numba_cpu.special import fexp
from backends.ops.banked_attention import EPS, check_decay
from backends.registry import implements, new_output

CHUNK = 32  # steps per checkpoint: the backward's buffer is CHUNK * N * Dk * Dv floats
_ONE = np.float32(1.0)
_EPS = np.float32(EPS)  # a float64 constant would turn the float32 accumulators into float64


@njit(cache=True)
def _log_sigmoid(x):
    if x >= 0:
        return -math.log1p(math.exp(-x))
    return x - math.log1p(math.exp(x))


@njit(cache=True)
def _softmax(logits, p):
    """p [N] = softmax(logits [N])."""
    m = logits[0]
    for n in range(1, logits.shape[0]):
        if logits[n] > m or math.isnan(logits[n]):
            m = logits[n]
    s = np.float32(0.0)
    for n in range(logits.shape[0]):
        p[n] = fexp(logits[n] - m)
        s += p[n]
    for n in range(logits.shape[0]):
        p[n] /= s


@njit(cache=True)
def _tokens(q, k, read_logits, write_logits, decay, per, b, h, t0, t1, fq, fk, pr, pw, gam, ll):
    """The per-token quantities of tokens t0 <= t < t1 (row t - t0), one call per chunk:
    fq, fk [CHUNK, Dk] = phi(q), phi(k); pr, pw [CHUNK, N] the softmaxes; gam [CHUNK, N];
    ll [CHUNK, N] = log lam of the token (decay [B or 1, T or 1, H, N], row (b, t) * per)."""
    for t in range(t0, t1):
        r = t - t0
        for i in range(fq.shape[1]):  # branch-free, so it vectorises; a NaN stays NaN
            u = q[b, t, h, i]
            e = fexp(u)
            fq[r, i] = e if u <= 0 else u + _ONE
        for i in range(fk.shape[1]):
            u = k[b, t, h, i]
            e = fexp(u)
            fk[r, i] = e if u <= 0 else u + _ONE
        _softmax(read_logits[b, t, h], pr[r])
        _softmax(write_logits[b, t, h], pw[r])
        for n in range(gam.shape[1]):
            ll[r, n] = _log_sigmoid(decay[b * per, t * per, h, n])
            gam[r, n] = fexp(pw[r, n] * ll[r, n])


@njit(cache=True)
def _head_buffers(N, Dk):
    """The chunk's token buffers fq, fk [CHUNK, Dk] and pr, pw, gam, ll [CHUNK, N] (see _tokens)."""
    f32 = np.float32
    return (np.empty((CHUNK, Dk), f32), np.empty((CHUNK, Dk), f32), np.empty((CHUNK, N), f32),
            np.empty((CHUNK, N), f32), np.empty((CHUNK, N), f32), np.empty((CHUNK, N), f32))


@njit(cache=True, fastmath=FAST)
def _write(S, z, gam, pw, fk, v_t):
    """One step of the state update, no read (the backward's recomputation)."""
    N, Dk, Dv = S.shape
    for n in range(N):
        g = gam[n]
        for i in range(Dk):
            a = pw[n] * fk[i]
            for d in range(Dv):
                S[n, i, d] = g * S[n, i, d] + a * v_t[d]
            z[n, i] = g * z[n, i] + a


@njit(parallel=True, cache=True, fastmath=FAST)
def _forward(q, k, v, read_logits, write_logits, decay, per, S0, z0, o, S_out, z_out, den_out, ck_S, ck_z, save):
    """save: also write den [B, T, H] and the states before steps 0, CHUNK, 2 CHUNK, ...
    decay [B or 1, T or 1, H, N] with per = 1 or 0 (module docstring)."""
    B, T, H, Dk = q.shape
    Dv = v.shape[3]
    N = read_logits.shape[3]
    for bh in prange(B * H):
        b, h = bh // H, bh % H
        S = S0[b, h].copy()  # [N, Dk, Dv]
        z = z0[b, h].copy()  # [N, Dk]
        FQ, FK, PR, PW, GAM, LL = _head_buffers(N, Dk)
        num = np.empty(Dv, dtype=np.float32)
        for t in range(T):
            r = t % CHUNK
            if r == 0:
                if save:
                    ck_S[b, h, t // CHUNK] = S
                    ck_z[b, h, t // CHUNK] = z
                _tokens(q, k, read_logits, write_logits, decay, per, b, h, t, min(T, t + CHUNK), FQ, FK, PR, PW, GAM,
                        LL)
            fq, fk, pr, pw, gam = FQ[r], FK[r], PR[r], PW[r], GAM[r]
            v_t = v[b, t, h]  # [Dv]
            num[:] = 0.0
            den = np.float32(0.0)
            for n in range(N):
                g = gam[n]
                for i in range(Dk):
                    a = pw[n] * fk[i]
                    c = pr[n] * fq[i]
                    for d in range(Dv):
                        s = g * S[n, i, d] + a * v_t[d]
                        S[n, i, d] = s
                        num[d] += c * s
                    zz = g * z[n, i] + a
                    z[n, i] = zz
                    den += c * zz
            den += _EPS
            if save:
                den_out[b, t, h] = den
            for d in range(Dv):
                o[b, t, h, d] = num[d] / den
        S_out[b, h] = S
        z_out[b, h] = z


@njit(parallel=True, cache=True, fastmath=FAST)
def _backward(q, k, v, read_logits, write_logits, decay, per, o, den_all, ck_S, ck_z, g_o, g_S, g_z,
              dq, dk, dv, d_read, d_write, d_decay_out, dS0, dz0):
    """The reverse-time recurrence, chunk by chunk. d_decay_out is like decay: per token
    [B, T, H, N] (per = 1), or [B, 1, H, N] summed over t here and over B by the caller."""
    B, T, H, Dk = q.shape
    Dv = v.shape[3]
    N = read_logits.shape[3]
    for bh in prange(B * H):
        b, h = bh // H, bh % H
        dS = g_S[b, h].copy()  # [N, Dk, Dv] the adjoint of the state after step t
        dz = g_z[b, h].copy()  # [N, Dk]
        FQ, FK, PR, PW, GAM, LL = _head_buffers(N, Dk)
        d_decay = np.zeros(N, dtype=np.float32)  # the sum over t (per = 0)
        buf_S = np.empty((CHUNK, N, Dk, Dv), dtype=np.float32)  # S_{t-1} for the chunk's t
        buf_z = np.empty((CHUNK, N, Dk), dtype=np.float32)
        dnum = np.empty(Dv, dtype=np.float32)
        dfq = np.empty(Dk, dtype=np.float32)
        dfk = np.empty(Dk, dtype=np.float32)
        dvt = np.empty(Dv, dtype=np.float32)
        dpr = np.empty(N, dtype=np.float32)
        dpw = np.empty(N, dtype=np.float32)
        dgam = np.empty(N, dtype=np.float32)
        for c in range((T + CHUNK - 1) // CHUNK - 1, -1, -1):
            t0 = c * CHUNK
            t1 = min(T, t0 + CHUNK)
            S = ck_S[b, h, c].copy()
            z = ck_z[b, h, c].copy()
            _tokens(q, k, read_logits, write_logits, decay, per, b, h, t0, t1, FQ, FK, PR, PW, GAM, LL)
            for t in range(t0, t1):  # recompute the chunk's states
                buf_S[t - t0] = S
                buf_z[t - t0] = z
                _write(S, z, GAM[t - t0], PW[t - t0], FK[t - t0], v[b, t, h])
            for t in range(t1 - 1, t0 - 1, -1):
                fq, fk, pr, pw, gam, log_lam = FQ[t - t0], FK[t - t0], PR[t - t0], PW[t - t0], GAM[t - t0], LL[t - t0]
                Sp = buf_S[t - t0]  # [N, Dk, Dv] S_{t-1}
                zp = buf_z[t - t0]
                v_t = v[b, t, h]
                den = den_all[b, t, h]
                dden = np.float32(0.0)
                for d in range(Dv):
                    dnum[d] = g_o[b, t, h, d] / den
                    dden -= g_o[b, t, h, d] * o[b, t, h, d]
                dden /= den
                dfq[:] = 0.0
                dfk[:] = 0.0
                dvt[:] = 0.0
                for n in range(N):
                    g = gam[n]
                    sp = np.float32(0.0)  # d loss / d p_r[n]
                    sw = np.float32(0.0)  # d loss / d p_w[n], direct part
                    sg = np.float32(0.0)  # d loss / d gamma[n]
                    for i in range(Dk):
                        a = pw[n] * fk[i]
                        cq = pr[n] * fq[i]
                        s_dnum = np.float32(0.0)  # S_t[i] . dnum
                        ds_v = np.float32(0.0)  # dS_t[i] . v_t
                        ds_sp = np.float32(0.0)  # dS_t[i] . S_{t-1}[i]
                        for d in range(Dv):
                            st = g * Sp[n, i, d] + a * v_t[d]
                            s_dnum += st * dnum[d]
                            ds = dS[n, i, d] + cq * dnum[d]
                            ds_v += ds * v_t[d]
                            ds_sp += ds * Sp[n, i, d]
                            dvt[d] += a * ds
                            dS[n, i, d] = g * ds
                        zt = g * zp[n, i] + a
                        dzz = dz[n, i] + cq * dden
                        read = s_dnum + dden * zt
                        dfq[i] += pr[n] * read
                        sp += fq[i] * read
                        sg += ds_sp + dzz * zp[n, i]
                        sw += fk[i] * (ds_v + dzz)
                        dfk[i] += pw[n] * (ds_v + dzz)
                        dz[n, i] = g * dzz
                    dpr[n] = sp
                    dpw[n] = sw + sg * gam[n] * log_lam[n]
                    # d log sigmoid(x) / dx = sigmoid(-x), formed directly (1 - lam cancels near lam = 1)
                    d_x = sg * gam[n] * pw[n] * math.exp(_log_sigmoid(-decay[b * per, t * per, h, n]))
                    if per:
                        d_decay_out[b, t, h, n] = d_x
                    else:
                        d_decay[n] += d_x
                    dgam[n] = sg
                rs = np.float32(0.0)
                ws = np.float32(0.0)
                for n in range(N):
                    rs += pr[n] * dpr[n]
                    ws += pw[n] * dpw[n]
                for n in range(N):
                    d_read[b, t, h, n] = pr[n] * (dpr[n] - rs)
                    d_write[b, t, h, n] = pw[n] * (dpw[n] - ws)
                for i in range(Dk):  # phi'(u) = 1 for u > 0, exp(u) otherwise (branch-free)
                    u = q[b, t, h, i]
                    e = fexp(u)
                    dq[b, t, h, i] = dfq[i] if u > 0 else dfq[i] * e
                for i in range(Dk):
                    u = k[b, t, h, i]
                    e = fexp(u)
                    dk[b, t, h, i] = dfk[i] if u > 0 else dfk[i] * e
                for d in range(Dv):
                    dv[b, t, h, d] = dvt[d]
        dS0[b, h] = dS
        dz0[b, h] = dz
        if not per:
            d_decay_out[b, 0, h] = d_decay


class _BankedAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, save, per_token, q, k, v, read_logits, write_logits, decay_logits, S0, z0):
        """save: a gradient will be wanted (the checkpoints and den are kept); per_token:
        decay_logits is [B, T, H, N], else [H, N]."""
        B, T, H, Dk = q.shape
        Dv, N = v.shape[3], read_logits.shape[3]
        dev = q.device
        has_state = S0 is not None
        if not has_state:
            S0 = torch.zeros((B, H, N, Dk, Dv), dtype=torch.float32)
            z0 = torch.zeros((B, H, N, Dk), dtype=torch.float32)
        n_ck = -(-T // CHUNK) if save else 0
        ck_S = torch.empty((B, H, n_ck, N, Dk, Dv), dtype=torch.float32)
        ck_z = torch.empty((B, H, n_ck, N, Dk), dtype=torch.float32)
        den = torch.empty((B, T, H) if save else (0, 0, 0), dtype=torch.float32)
        o = new_output((B, T, H, Dv), torch.float32, dev)
        S = new_output((B, H, N, Dk, Dv), torch.float32, dev)
        z = new_output((B, H, N, Dk), torch.float32, dev)
        decay = as_array(decay_logits if per_token else decay_logits[None, None])  # [B or 1, T or 1, H, N]
        ins = [as_array(t) for t in (q, k, v, read_logits, write_logits)]
        _forward(*ins, decay, int(per_token), as_array(S0), as_array(z0), as_array(o), as_array(S), as_array(z), den.numpy(), ck_S.numpy(), ck_z.numpy(), save)
        ctx.has_state, ctx.per_token = has_state, per_token
        if save:
            ctx.save_for_backward(q, k, v, read_logits, write_logits, decay_logits, o, den, ck_S, ck_z)
        return o, S, z

    @staticmethod
    def backward(ctx, g_o, g_S, g_z):
        q, k, v, read_logits, write_logits, decay_logits, o, den, ck_S, ck_z = ctx.saved_tensors
        B, T, H, Dk = q.shape
        N = read_logits.shape[3]
        grads = [empty_like(t) for t in (q, k, v, read_logits, write_logits)]
        per = ctx.per_token
        d_decay = torch.empty((B, T if per else 1, H, N), dtype=torch.float32)
        dS0 = torch.empty(g_S.shape, dtype=torch.float32)
        dz0 = torch.empty(g_z.shape, dtype=torch.float32)
        decay = as_array(decay_logits if per else decay_logits[None, None])
        _backward(*[as_array(t) for t in (q, k, v, read_logits, write_logits)], decay, int(per),
                  *[as_array(t) for t in (o, den, ck_S, ck_z, g_o, g_S, g_z)],
                  *[as_array(t) for t in grads], d_decay.numpy(), dS0.numpy(), dz0.numpy())
        if not per:
            d_decay = d_decay.sum((0, 1))  # [H, N]
        if not ctx.has_state:
            dS0 = dz0 = None
        return (None, None, *grads, d_decay, dS0, dz0)


@implements("banked_attention", dtypes=(torch.float32,))
def banked_attention(q, k, v, read_logits, write_logits, decay_logits, state=None):
    per_token = check_decay("numba_cpu", q, decay_logits)
    S0, z0 = (None, None) if state is None else state
    tensors = (q, k, v, read_logits, write_logits, decay_logits, S0, z0)
    save = records_graph(tensors)
    o, S, z = apply(_BankedAttention, save, per_token, *tensors)
    return o, (S, z)
