"""banked_attention, Triton: the chunked form, all N banks of a head in one program.

A program owns one (batch, head) and a block of value columns and walks the sequence in
chunks of L tokens, carrying the state of every bank in registers as one matrix
[N * Dk, Dv] (bank-major rows; z as [N * Dk]). Per bank the log-decay of token t is
a_t,n = p_w[t, n] log(lam_n) <= 0 and A its cumulative sum within the chunk, so the
decay from token s to t >= s is exp(A_t,n - A_s,n) <= 1, formed only on the causal
triangle (nothing overflows, no division by cumulative products). Per chunk, with
f = phi:
    QK     = f(q) f(k)^T                                    one product for all banks
    W_ts   = sum_n p_r[t,n] exp(A_t,n - A_s,n) p_w[s,n]      (s <= t)
    P      = QK * W;   num = P v + Qc S;   den = rowsum(P) + Qc . z
    Qc     = [f(q_t) p_r[t,n] exp(A_t,n)]_n                  [L, N * Dk]
    S     <- exp(A_L) S + Kc^T v,  Kc = [f(k_s) p_w[s,n] exp(A_L,n - A_s,n)]_n
    o      = num / (den + 1e-6)
so q, k and v are read once for all banks and every product is a dot.

Backward: a first pass (the forward kernel without outputs) recomputes and stores the
state entering each chunk; a second kernel walks the chunks backwards carrying the
gradient dH of the state at the chunk's end, recomputes o and den from the stored state,
and forms, with dnum = do / den and dden = -(do . o) / den (z acts as a value column
that is always 1):
    dr[t,n]  = d/dp_r (read path),  dw[s,n] = d/dp_w (write path),
    dq, dk, dv, and dH <- exp(A_L) dH + Qc^T dnum (the same with z).
The decay enters only through the cumulative sums: the gradient of the cumulative log
decay at token t is p_r dr - p_w dw (reads scale with exp(G_t), writes with exp(-G_t)),
plus <dS_T, S_T> + <dz_T, z_T> at the last token; a reverse cumulative sum over the
sequence turns it into the gradient of each a_t, which flows to p_w and log(lam).

decay_logits [H, N] or per token [B, T, H, N]: both are read as a token tile [L, BN]
(the [H, N] layout with zero batch and time strides), so log(lam) is per token in every
chunk and one kernel serves both. The decay's gradient is per token (stored with the
other token gradients) or, for [H, N], summed over the chunks in the program and over B
by the caller.
"""

import torch
import triton
import triton.language as tl

from backends.ops.banked_attention import EPS, check_decay
from backends.registry import implements, new_output

# L = 16 tokens a chunk for every N (the smallest a tl.dot takes): at L = 64 (N = 1) the
# backward's [L, L] tiles needed 72 KB of spills a thread (ptxas -v, sm_90, arsenal gpu-compile)
CHUNK_TOKENS = 16  # L * N_pad (L >= 16): the [L, L, N_pad] decay tile holds 16 L numbers
MAX_BLOCK_V = 64  # value columns per forward program
# Both kernels at 8 warps: the decay tile, the state [N * Dk, BLOCK_V] and the chunk
# operands are live together; at 4 warps even the quick suite's N = 4, Dk = Dv = 16
# spilled (112 bytes forward, 732 backward, sm_90), at 8 not. Unpipelined (1 stage):
# the chunk loop's multi-buffered state loads took 270 KB of shared memory in the
# backward at N = 4, Dk = Dv = 64 (more than either chip has), 103 KB at 1 stage.
NUM_WARPS, NUM_STAGES = 8, 1
_EPS = tl.constexpr(EPS)


@triton.jit
def _log1p(u):
    """log(1 + u) for u >= 0, accurate for small u (the (1+u)-1 correction)."""
    w = 1.0 + u
    return tl.where(w == 1.0, u, tl.log(w) * (u / (w - 1.0)))


@triton.jit
def _log_sigmoid(x):
    return tl.minimum(x, 0.0) - _log1p(tl.exp(-tl.abs(x)))


@triton.jit
def _phi(u, mask):
    """elu(u) + 1, and 0 where mask is False (padding must not add phi(0) = 1); NaN stays NaN."""
    return tl.where(mask, tl.where(u > 0, u + 1.0, tl.exp(u)), 0.0)


@triton.jit
def _softmax_rows(x, mask):
    """Row softmax of x [L, BN] over the True entries of mask; rows without any are 0."""
    m = tl.max(tl.where(mask, x, float("-inf")), axis=1)
    m = tl.where(m == float("-inf"), 0.0, m)
    e = tl.where(mask, tl.exp(x - m[:, None]), 0.0)
    s = tl.sum(e, axis=1)
    return e / tl.where(s == 0.0, 1.0, s)[:, None]


@triton.jit
def _load_tokens(ptr, b, h, t, cols, T, C, s_b, s_t, s_h, s_c):
    """x[b, t, h, cols] as float32 [L, BC], 0 outside t < T, cols < C."""
    mask = (t[:, None] < T) & (cols[None, :] < C)
    x = tl.load(ptr + b * s_b + t[:, None] * s_t + h * s_h + cols[None, :] * s_c, mask=mask, other=0.0)
    return x.to(tl.float32)


@triton.jit
def _chunk_gates(rl_ptr, wl_ptr, la, b, h, t, T, N, s_rb, s_rt, s_rh, s_rn, s_wb, s_wt, s_wh, s_wn,
                 BN: tl.constexpr):
    """p_r, p_w, the cumulative log decay A and its chunk total A_L, for tokens t [L] with
    log(lam) la [L, BN]. p_r, p_w, A: [L, BN]; A_L: [BN]. Padding tokens and banks have
    p = 0, so decay 0."""
    n = tl.arange(0, BN)
    mask = (t[:, None] < T) & (n[None, :] < N)
    p_r = _softmax_rows(_load_tokens(rl_ptr, b, h, t, n, T, N, s_rb, s_rt, s_rh, s_rn), mask)
    p_w = _softmax_rows(_load_tokens(wl_ptr, b, h, t, n, T, N, s_wb, s_wt, s_wh, s_wn), mask)
    a = p_w * la  # [L, BN] log decay of each token
    return p_r, p_w, tl.cumsum(a, axis=0), tl.sum(a, axis=0)


@triton.jit
def _decays(A, L: tl.constexpr):
    """(X [L, L, BN] = exp(A_t - A_s) on s <= t else 0, causal [L, L])."""
    i = tl.arange(0, L)
    causal = i[:, None] >= i[None, :]
    diff = tl.where(causal[:, :, None], A[:, None, :] - A[None, :, :], float("-inf"))
    return tl.exp(diff), causal


@triton.jit
def _bank_rows(x, y, L: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    """[L, BN * BK]: row t holds x[t, :] * y[t, n] for each bank n in turn."""
    return tl.reshape(x[:, None, :] * y[:, :, None], [L, BN * BK])


@triton.jit
def _per_bank(v, BN: tl.constexpr, BK: tl.constexpr):
    """[BN * BK] -> [BN, BK]."""
    return tl.reshape(v, [BN, BK])


@triton.jit
def _bank_scale(d, BN: tl.constexpr, BK: tl.constexpr):
    """A per-bank factor d [BN] spread over the bank-major rows: [BN * BK]."""
    return tl.reshape(tl.broadcast_to(d[:, None], [BN, BK]), [BN * BK])


@triton.jit
def _fwd_kernel(q_ptr, k_ptr, v_ptr, rl_ptr, wl_ptr, dl_ptr, s0_ptr, z0_ptr, o_ptr, s_ptr, z_ptr, cs_ptr, cz_ptr,
                T, H, N, Dk, Dv, n_chunks,
                s_qb, s_qt, s_qh, s_qd, s_kb, s_kt, s_kh, s_kd, s_vb, s_vt, s_vh, s_vd,
                s_rb, s_rt, s_rh, s_rn, s_wb, s_wt, s_wh, s_wn, s_db, s_dt, s_dh, s_dn,
                s_sb, s_sh, s_sn, s_sk, s_sv, s_zb, s_zh, s_zn, s_zk,
                HAS_STATE: tl.constexpr, WRITE_OUT: tl.constexpr, SAVE_CHUNKS: tl.constexpr,
                L: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr):
    """WRITE_OUT: o [B, T, H, Dv] and the final S, z (contiguous outputs).
    SAVE_CHUNKS: the float32 state entering each chunk and the final one,
    cs [B*H, n_chunks + 1, BN*BK, BV], cz [B*H, n_chunks + 1, BN*BK] (one value block)."""
    pv, bh = tl.program_id(0), tl.program_id(1)
    b, h = bh // H, bh % H
    BNK: tl.constexpr = BN * BK
    rows = tl.arange(0, BNK)
    n_of, k_of = rows // BK, rows % BK  # bank and key index of each state row
    row_ok = (n_of < N) & (k_of < Dk)
    cols = pv * BV + tl.arange(0, BV)
    col_ok = cols < Dv
    kk = tl.arange(0, BK)
    if HAS_STATE:
        S = tl.load(s0_ptr + b * s_sb + h * s_sh + n_of[:, None] * s_sn + k_of[:, None] * s_sk + cols[None, :] * s_sv,
                    mask=row_ok[:, None] & col_ok[None, :], other=0.0).to(tl.float32)  # [BNK, BV]
        z = tl.load(z0_ptr + b * s_zb + h * s_zh + n_of * s_zn + k_of * s_zk, mask=row_ok, other=0.0).to(tl.float32)
    else:
        S = tl.zeros([BNK, BV], tl.float32)
        z = tl.zeros([BNK], tl.float32)
    n = tl.arange(0, BN)
    for c in range(n_chunks):
        if SAVE_CHUNKS:
            tl.store(cs_ptr + ((bh * (n_chunks + 1) + c) * BNK + rows[:, None]) * BV + cols[None, :], S)
            tl.store(cz_ptr + (bh * (n_chunks + 1) + c) * BNK + rows, z)
        t = c * L + tl.arange(0, L)
        t_ok = t < T
        fk = _phi(_load_tokens(k_ptr, b, h, t, kk, T, Dk, s_kb, s_kt, s_kh, s_kd), t_ok[:, None] & (kk[None, :] < Dk))
        v = _load_tokens(v_ptr, b, h, t, cols, T, Dv, s_vb, s_vt, s_vh, s_vd)  # [L, BV]
        la = _log_sigmoid(_load_tokens(dl_ptr, b, h, t, n, T, N, s_db, s_dt, s_dh, s_dn))  # [L, BN]
        p_r, p_w, A, A_L = _chunk_gates(rl_ptr, wl_ptr, la, b, h, t, T, N, s_rb, s_rt, s_rh, s_rn,
                                        s_wb, s_wt, s_wh, s_wn, BN)
        if WRITE_OUT:
            fq = _phi(_load_tokens(q_ptr, b, h, t, kk, T, Dk, s_qb, s_qt, s_qh, s_qd),
                      t_ok[:, None] & (kk[None, :] < Dk))
            X, causal = _decays(A, L)
            W = tl.sum(p_r[:, None, :] * X * p_w[None, :, :], axis=2)  # [L, L]
            P = tl.where(causal, tl.dot(fq, tl.trans(fk), input_precision="ieee") * W, 0.0)
            Qc = _bank_rows(fq, p_r * tl.exp(A), L, BN, BK)  # [L, BNK]
            num = tl.dot(P, v, input_precision="ieee") + tl.dot(Qc, S, input_precision="ieee")  # [L, BV]
            den = tl.sum(P, axis=1) + tl.sum(Qc * z[None, :], axis=1) + _EPS
            o = num / den[:, None]
            tl.store(o_ptr + ((b * T + t[:, None]) * H + h) * Dv + cols[None, :], o.to(o_ptr.dtype.element_ty),
                     mask=t_ok[:, None] & col_ok[None, :])
        Kc = _bank_rows(fk, p_w * tl.exp(A_L[None, :] - A), L, BN, BK)  # [L, BNK]
        decay = _bank_scale(tl.exp(A_L), BN, BK)  # [BNK]
        S = decay[:, None] * S + tl.dot(tl.trans(Kc), v, input_precision="ieee")
        z = decay * z + tl.sum(Kc, axis=0)
    if SAVE_CHUNKS:
        tl.store(cs_ptr + ((bh * (n_chunks + 1) + n_chunks) * BNK + rows[:, None]) * BV + cols[None, :], S)
        tl.store(cz_ptr + (bh * (n_chunks + 1) + n_chunks) * BNK + rows, z)
    if WRITE_OUT:
        tl.store(s_ptr + (bh * N + n_of[:, None]) * Dk * Dv + k_of[:, None] * Dv + cols[None, :],
                 S.to(s_ptr.dtype.element_ty), mask=row_ok[:, None] & col_ok[None, :])
        if pv == 0:
            tl.store(z_ptr + (bh * N + n_of) * Dk + k_of, z.to(z_ptr.dtype.element_ty), mask=row_ok)


@triton.jit
def _bwd_kernel(q_ptr, k_ptr, v_ptr, rl_ptr, wl_ptr, dl_ptr, do_ptr, gs_ptr, gz_ptr, cs_ptr, cz_ptr,
                dq_ptr, dk_ptr, dv_ptr, drl_ptr, dwl_ptr, dla_ptr, ds0_ptr, dz0_ptr,
                T, H, N, Dk, Dv, n_chunks,
                s_qb, s_qt, s_qh, s_qd, s_kb, s_kt, s_kh, s_kd, s_vb, s_vt, s_vh, s_vd,
                s_rb, s_rt, s_rh, s_rn, s_wb, s_wt, s_wh, s_wn, s_db, s_dt, s_dh, s_dn, s_ob, s_ot, s_oh, s_od,
                s_gsb, s_gsh, s_gsn, s_gsk, s_gsv, s_gzb, s_gzh, s_gzn, s_gzk,
                HAS_STATE: tl.constexpr, PER_TOKEN: tl.constexpr,
                L: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr):
    """One (batch, head): every gradient, walking the chunks from the last. Outputs are
    contiguous; dla is d loss / d decay_logits: [B, T, H, N] when PER_TOKEN, else
    [B, H, N] float32, this batch row's part."""
    bh = tl.program_id(0)
    b, h = bh // H, bh % H
    BNK: tl.constexpr = BN * BK
    rows = tl.arange(0, BNK)
    n_of, k_of = rows // BK, rows % BK
    row_ok = (n_of < N) & (k_of < Dk)
    cols = tl.arange(0, BV)
    col_ok = cols < Dv
    kk = tl.arange(0, BK)
    n = tl.arange(0, BN)
    # gradient of the final state, and its reader term <dS_T, S_T> + <dz_T, z_T> per bank
    dH = tl.load(gs_ptr + b * s_gsb + h * s_gsh + n_of[:, None] * s_gsn + k_of[:, None] * s_gsk + cols[None, :] * s_gsv,
                 mask=row_ok[:, None] & col_ok[None, :], other=0.0).to(tl.float32)  # [BNK, BV]
    dhz = tl.load(gz_ptr + b * s_gzb + h * s_gzh + n_of * s_gzn + k_of * s_gzk, mask=row_ok, other=0.0).to(tl.float32)
    S_T = tl.load(cs_ptr + ((bh * (n_chunks + 1) + n_chunks) * BNK + rows[:, None]) * BV + cols[None, :])
    z_T = tl.load(cz_ptr + (bh * (n_chunks + 1) + n_chunks) * BNK + rows)
    carry = tl.sum(_per_bank(tl.sum(dH * S_T, axis=1) + dhz * z_T, BN, BK), axis=1)  # [BN] later tokens' dG
    dla = tl.zeros([BN], tl.float32)
    for cc in range(n_chunks):
        c = n_chunks - 1 - cc
        S0 = tl.load(cs_ptr + ((bh * (n_chunks + 1) + c) * BNK + rows[:, None]) * BV + cols[None, :])  # [BNK, BV]
        z0 = tl.load(cz_ptr + (bh * (n_chunks + 1) + c) * BNK + rows)
        t = c * L + tl.arange(0, L)
        t_ok = t < T
        tk_ok = t_ok[:, None] & (kk[None, :] < Dk)
        tv_ok = t_ok[:, None] & col_ok[None, :]
        q = _load_tokens(q_ptr, b, h, t, kk, T, Dk, s_qb, s_qt, s_qh, s_qd)
        k = _load_tokens(k_ptr, b, h, t, kk, T, Dk, s_kb, s_kt, s_kh, s_kd)
        fq, fk = _phi(q, tk_ok), _phi(k, tk_ok)  # [L, BK]
        v = _load_tokens(v_ptr, b, h, t, cols, T, Dv, s_vb, s_vt, s_vh, s_vd)  # [L, BV]
        do = _load_tokens(do_ptr, b, h, t, cols, T, Dv, s_ob, s_ot, s_oh, s_od)
        x = _load_tokens(dl_ptr, b, h, t, n, T, N, s_db, s_dt, s_dh, s_dn)  # [L, BN] decay logits
        la = _log_sigmoid(x)
        p_r, p_w, A, A_L = _chunk_gates(rl_ptr, wl_ptr, la, b, h, t, T, N, s_rb, s_rt, s_rh, s_rn,
                                        s_wb, s_wt, s_wh, s_wn, BN)
        # the forward of this chunk again
        X, causal = _decays(A, L)
        W = tl.sum(p_r[:, None, :] * X * p_w[None, :, :], axis=2)  # [L, L]
        QK = tl.dot(fq, tl.trans(fk), input_precision="ieee")
        P = tl.where(causal, QK * W, 0.0)
        g_r = p_r * tl.exp(A)  # [L, BN]
        Qc = _bank_rows(fq, g_r, L, BN, BK)  # [L, BNK]
        den = tl.sum(P, axis=1) + tl.sum(Qc * z0[None, :], axis=1) + _EPS  # [L]
        o = (tl.dot(P, v, input_precision="ieee") + tl.dot(Qc, S0, input_precision="ieee")) / den[:, None]
        dnum = do / den[:, None]  # [L, BV]
        dden = -tl.sum(do * o, axis=1) / den  # [L]
        VD = tl.dot(dnum, tl.trans(v), input_precision="ieee") + dden[:, None]  # [L, L]: d/d(q_t . k_s) per unit W
        QKVD = tl.where(causal, QK * VD, 0.0)
        WVD = tl.where(causal, W * VD, 0.0)
        # read path: S_t dnum_t + z_t dden_t against phi(q_t), per bank
        R = tl.reshape(tl.dot(dnum, tl.trans(S0), input_precision="ieee") + dden[:, None] * z0[None, :], [L, BN, BK])
        dr = tl.exp(A) * tl.sum(fq[:, None, :] * R, axis=2) + tl.sum(X * p_w[None, :, :] * QKVD[:, :, None], axis=1)
        dfq = tl.sum(g_r[:, :, None] * R, axis=1) + tl.dot(WVD, fk, input_precision="ieee")  # [L, BK]
        # write path: dS_s v_s + dz_s against phi(k_s), per bank
        to_end = tl.exp(A_L[None, :] - A)  # [L, BN]
        Y = tl.reshape(tl.dot(v, tl.trans(dH), input_precision="ieee") + dhz[None, :], [L, BN, BK])
        dw = to_end * tl.sum(fk[:, None, :] * Y, axis=2) + tl.sum(X * p_r[:, None, :] * QKVD[:, :, None], axis=0)
        w_end = p_w * to_end
        dfk = tl.sum(w_end[:, :, None] * Y, axis=1) + tl.dot(tl.trans(WVD), fq, input_precision="ieee")
        Kc = _bank_rows(fk, w_end, L, BN, BK)
        dv = tl.dot(tl.trans(P), dnum, input_precision="ieee") + tl.dot(Kc, dH, input_precision="ieee")  # [L, BV]
        # the decay: reverse cumulative sum of dG over the sequence
        dG = p_r * dr - p_w * dw  # [L, BN]
        total = tl.sum(dG, axis=0)
        da = carry[None, :] + total[None, :] - tl.cumsum(dG, axis=0) + dG
        carry += total
        dw += da * la
        dx = da * p_w * tl.exp(_log_sigmoid(-x))  # d log(sigmoid(x)) / dx = sigmoid(-x)
        drl = p_r * (dr - tl.sum(p_r * dr, axis=1)[:, None])
        dwl = p_w * (dw - tl.sum(p_w * dw, axis=1)[:, None])
        dq = dfq * tl.where(q > 0, 1.0, tl.exp(q))  # phi'
        dk = dfk * tl.where(k > 0, 1.0, tl.exp(k))
        tok = (b * T + t[:, None]) * H + h
        tl.store(dq_ptr + tok * Dk + kk[None, :], dq.to(dq_ptr.dtype.element_ty), mask=tk_ok)
        tl.store(dk_ptr + tok * Dk + kk[None, :], dk.to(dk_ptr.dtype.element_ty), mask=tk_ok)
        tl.store(dv_ptr + tok * Dv + cols[None, :], dv.to(dv_ptr.dtype.element_ty), mask=tv_ok)
        tn_ok = t_ok[:, None] & (n[None, :] < N)
        tl.store(drl_ptr + tok * N + n[None, :], drl.to(drl_ptr.dtype.element_ty), mask=tn_ok)
        tl.store(dwl_ptr + tok * N + n[None, :], dwl.to(dwl_ptr.dtype.element_ty), mask=tn_ok)
        if PER_TOKEN:
            tl.store(dla_ptr + tok * N + n[None, :], dx.to(dla_ptr.dtype.element_ty), mask=tn_ok)
        else:
            dla += tl.sum(tl.where(tn_ok, dx, 0.0), axis=0)
        # the gradient of the state entering this chunk
        decay = _bank_scale(tl.exp(A_L), BN, BK)
        dH = decay[:, None] * dH + tl.dot(tl.trans(Qc), dnum, input_precision="ieee")
        dhz = decay * dhz + tl.sum(Qc * dden[:, None], axis=0)
    if not PER_TOKEN:
        tl.store(dla_ptr + bh * N + n, dla, mask=n < N)
    if HAS_STATE:
        tl.store(ds0_ptr + (bh * N + n_of[:, None]) * Dk * Dv + k_of[:, None] * Dv + cols[None, :],
                 dH.to(ds0_ptr.dtype.element_ty), mask=row_ok[:, None] & col_ok[None, :])
        tl.store(dz0_ptr + (bh * N + n_of) * Dk + k_of, dhz.to(dz0_ptr.dtype.element_ty), mask=row_ok)


def _sizes(q, v, read_logits):
    B, T, H, Dk = q.shape
    Dv, N = v.shape[-1], read_logits.shape[-1]
    BN = triton.next_power_of_2(N)
    L = max(16, min(CHUNK_TOKENS // BN, triton.next_power_of_2(T)))
    return B, T, H, Dk, Dv, N, dict(L=L, BN=BN, BK=max(16, triton.next_power_of_2(Dk)))


def _token_strides(*tensors):
    return [s for t in tensors for s in t.stride()]


def _decay_strides(decay_logits):
    """(s_b, s_t, s_h, s_n) of decay_logits read as [B, T, H, N]: an [H, N] layout has zero
    batch and time strides."""
    return list(decay_logits.stride()) if decay_logits.dim() == 4 else [0, 0, *decay_logits.stride()]


class _BankedAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, read_logits, write_logits, decay_logits, S0, z0):
        inputs = [t.detach() for t in (q, k, v, read_logits, write_logits, decay_logits)]
        S0 = None if S0 is None else S0.detach()
        z0 = None if z0 is None else z0.detach()
        B, T, H, Dk, Dv, N, blocks = _sizes(q, v, read_logits)
        n_chunks = triton.cdiv(T, blocks["L"])
        block_v = min(MAX_BLOCK_V, max(16, triton.next_power_of_2(Dv)))
        o = new_output((B, T, H, Dv), q.dtype, q.device)
        S = new_output((B, H, N, Dk, Dv), q.dtype, q.device)
        z = new_output((B, H, N, Dk), q.dtype, q.device)
        _launch_states(inputs, S0, z0, (o, S, z, o, o), n_chunks, block_v, blocks, write_out=True)
        ctx.save_for_backward(*inputs, S0, z0)
        return o, S, z

    @staticmethod
    def backward(ctx, g_o, g_S, g_z):
        *inputs, S0, z0 = ctx.saved_tensors
        q, k, v, read_logits, write_logits, decay_logits = inputs
        B, T, H, Dk, Dv, N, blocks = _sizes(q, v, read_logits)
        n_chunks = triton.cdiv(T, blocks["L"])
        block_v = max(16, triton.next_power_of_2(Dv))  # one value block: the gradients sum over Dv
        BNK = blocks["BN"] * blocks["BK"]
        chunk_S = torch.empty((B * H, n_chunks + 1, BNK, block_v), dtype=torch.float32, device=q.device)
        chunk_z = torch.empty((B * H, n_chunks + 1, BNK), dtype=torch.float32, device=q.device)
        _launch_states(inputs, S0, z0, (q, q, q, chunk_S, chunk_z), n_chunks, block_v, blocks, write_out=False)
        grads = [torch.empty(t.shape, dtype=t.dtype, device=t.device) for t in (q, k, v, read_logits, write_logits)]
        per_token = decay_logits.dim() == 4
        dla = torch.empty((B, T, H, N) if per_token else (B, H, N), dtype=torch.float32, device=q.device)
        dS0 = dz0 = None
        if S0 is not None:
            dS0 = torch.empty(S0.shape, dtype=S0.dtype, device=S0.device)
            dz0 = torch.empty(z0.shape, dtype=z0.dtype, device=z0.device)
        _bwd_kernel[(B * H,)](
            q, k, v, read_logits, write_logits, decay_logits, g_o, g_S, g_z, chunk_S, chunk_z,
            *grads, dla, q if dS0 is None else dS0, q if dz0 is None else dz0, T, H, N, Dk, Dv, n_chunks,
            *_token_strides(q, k, v, read_logits, write_logits), *_decay_strides(decay_logits),
            *_token_strides(g_o, g_S, g_z),
            HAS_STATE=S0 is not None, PER_TOKEN=per_token, BV=block_v, num_warps=NUM_WARPS,
            num_stages=NUM_STAGES, **blocks)
        # per token: every token's gradient; else each (batch, head) program wrote its part of
        # d decay_logits, and the batch sum is [H, N]
        return (*grads, (dla if per_token else dla.sum(0)).to(decay_logits.dtype), dS0, dz0)


def _launch_states(inputs, S0, z0, outs, n_chunks, block_v, blocks, write_out):
    """The forward kernel: outputs (o, S, z) when write_out, else the chunk states."""
    q, k, v, read_logits, write_logits, decay_logits = inputs
    B, T, H, Dk, Dv, N, _ = _sizes(q, v, read_logits)
    o, S, z, chunk_S, chunk_z = outs
    has_state = S0 is not None
    state_strides = _token_strides(S0, z0) if has_state else [0] * 9
    _fwd_kernel[(triton.cdiv(Dv, block_v), B * H)](
        q, k, v, read_logits, write_logits, decay_logits, S0 if has_state else q, z0 if has_state else q,
        o, S, z, chunk_S, chunk_z, T, H, N, Dk, Dv, n_chunks,
        *_token_strides(q, k, v, read_logits, write_logits), *_decay_strides(decay_logits), *state_strides,
        HAS_STATE=has_state, WRITE_OUT=write_out, SAVE_CHUNKS=not write_out, BV=block_v,
        num_warps=NUM_WARPS, num_stages=NUM_STAGES, **blocks)


@implements("banked_attention", dtypes=(torch.float32, torch.bfloat16))
def banked_attention(q, k, v, read_logits, write_logits, decay_logits, state=None):
    check_decay("triton", q, decay_logits)
    S0, z0 = (None, None) if state is None else state
    o, S, z = _BankedAttention.apply(q, k, v, read_logits, write_logits, decay_logits, S0, z0)
    return o, (S, z)
