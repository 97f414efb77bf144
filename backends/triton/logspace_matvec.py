"""logspace_matvec, Triton: one pass over K per output tile.

Forward: a program owns a [BLOCK_B, BLOCK_M] tile of outputs and streams K in tiles of
BLOCK_K. Per tile it forms the terms log|w_ij| + x_log_bj with their signs, raises the
running maximum, rescales the running positive and negative sums by exp(old - new) and
adds the tile's exp(term - max): the max, the exp-sums and the final log in one kernel,
with only [BLOCK_B, BLOCK_M] numbers carried between tiles.

Backward: d y_log_bi / d w_ij = x_bj / y_bi = x_sign_bj y_sign_bi exp(x_log_bj - y_log_bi),
and d y_log_bi / d x_log_bj = w_ij x_bj / y_bi (the same factor times w_ij, formed as
exp(log|w_ij| + x_log_bj - y_log_bi) so a tiny w_ij does not meet an overflowing factor).
One kernel reduces over M for dx_log, one over B for dw. Outputs with y exactly 0
(y_log = -inf) pass no gradient. The backward reads a float32 copy of y_log: a bf16
y_log of magnitude 1e4 is off by up to 32, which exp would turn into a factor e^32.
"""

import torch
import triton
import triton.language as tl

from backends.registry import implements, new_output

BLOCK_B = 8  # batch rows per program
BLOCK_M = 32  # output rows per program
BLOCK_K = 32  # reduction tile: the [BLOCK_B, BLOCK_M, BLOCK_K] terms live in registers


@triton.jit
def _load_x(xl_ptr, xs_ptr, bb, k, B, K, s_xlb, s_xlk, s_xsb, s_xsk):
    """x_log and x_sign [BB, BK] as float32; padding is an exact zero (-inf, +1)."""
    mask = (bb[:, None] < B) & (k[None, :] < K)
    xl = tl.load(xl_ptr + bb[:, None] * s_xlb + k[None, :] * s_xlk, mask=mask, other=float("-inf")).to(tl.float32)
    xs = tl.load(xs_ptr + bb[:, None] * s_xsb + k[None, :] * s_xsk, mask=mask, other=1.0).to(tl.float32)
    return xl, xs


@triton.jit
def _fwd_kernel(w_ptr, xl_ptr, xs_ptr, yl_ptr, ys_ptr, yl32_ptr, B, M, K,
                s_wm, s_wk, s_xlb, s_xlk, s_xsb, s_xsk,
                BLOCK_B: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr, STORE_F32: tl.constexpr):
    bb = tl.program_id(1) * BLOCK_B + tl.arange(0, BLOCK_B)  # [BB]
    mm = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)  # [BM]
    kk = tl.arange(0, BLOCK_K)
    m = tl.full([BLOCK_B, BLOCK_M], float("-inf"), tl.float32)  # running max of the terms
    pos = tl.zeros([BLOCK_B, BLOCK_M], tl.float32)  # sum of exp(term - m) over positive terms
    neg = tl.zeros([BLOCK_B, BLOCK_M], tl.float32)
    for k0 in range(0, K, BLOCK_K):
        k = k0 + kk
        wmask = (mm[:, None] < M) & (k[None, :] < K)
        w = tl.load(w_ptr + mm[:, None] * s_wm + k[None, :] * s_wk, mask=wmask, other=0.0).to(tl.float32)  # [BM, BK]
        xl, xs = _load_x(xl_ptr, xs_ptr, bb, k, B, K, s_xlb, s_xlk, s_xsb, s_xsk)  # [BB, BK]
        t = tl.log(tl.abs(w))[None, :, :] + xl[:, None, :]  # [BB, BM, BK]; padding and zeros are -inf
        s = tl.where(w < 0, -1.0, 1.0)[None, :, :] * xs[:, None, :]
        m_new = tl.maximum(m, tl.max(t, axis=2))
        base = tl.where(m_new == float("-inf"), 0.0, m_new)  # all terms so far are exact zeros
        scale = tl.exp(m - base)
        e = tl.exp(t - base[:, :, None])
        pos = pos * scale + tl.sum(tl.where(s > 0, e, 0.0), axis=2)
        neg = neg * scale + tl.sum(tl.where(s < 0, e, 0.0), axis=2)
        m = m_new
    base = tl.where(m == float("-inf"), 0.0, m)
    y_log = base + tl.log(tl.abs(pos - neg))  # -inf where y is exactly 0
    y_sign = tl.where(pos >= neg, 1.0, -1.0)
    out = bb[:, None] * M + mm[None, :]
    omask = (bb[:, None] < B) & (mm[None, :] < M)
    tl.store(yl_ptr + out, y_log.to(yl_ptr.dtype.element_ty), mask=omask)
    tl.store(ys_ptr + out, y_sign.to(ys_ptr.dtype.element_ty), mask=omask)
    if STORE_F32:
        tl.store(yl32_ptr + out, y_log, mask=omask)


@triton.jit
def _out_coef(g_ptr, yl_ptr, ys_ptr, b, i, B, M, s_gb, s_gm):
    """(c, y_log) for outputs (b, i): c = dy_log * y_sign, 0 where y = 0 or out of range;
    y_log with -inf replaced by 0 so exp never sees +inf. b: [BB, 1], i: [1, BM] (or
    transposed); the float32 y_log and y_sign are contiguous [B, M]."""
    mask = (b < B) & (i < M)
    g = tl.load(g_ptr + b * s_gb + i * s_gm, mask=mask, other=0.0).to(tl.float32)
    y_log = tl.load(yl_ptr + b * M + i, mask=mask, other=float("-inf"))
    y_sign = tl.load(ys_ptr + b * M + i, mask=mask, other=1.0).to(tl.float32)
    zero = y_log == float("-inf")
    return tl.where(zero, 0.0, g * y_sign), tl.where(zero, 0.0, y_log)


@triton.jit
def _dx_kernel(w_ptr, xl_ptr, xs_ptr, yl_ptr, ys_ptr, g_ptr, dx_ptr, B, M, K,
               s_wm, s_wk, s_xlb, s_xlk, s_xsb, s_xsk, s_gb, s_gm,
               BLOCK_B: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr):
    """dx_log[b, j] = x_sign_bj sum_i c_bi sign(w_ij) exp(log|w_ij| + x_log_bj - y_log_bi)."""
    bb = tl.program_id(1) * BLOCK_B + tl.arange(0, BLOCK_B)
    k = tl.program_id(0) * BLOCK_K + tl.arange(0, BLOCK_K)
    mm0 = tl.arange(0, BLOCK_M)
    xl, xs = _load_x(xl_ptr, xs_ptr, bb, k, B, K, s_xlb, s_xlk, s_xsb, s_xsk)  # [BB, BK]
    acc = tl.zeros([BLOCK_B, BLOCK_K], tl.float32)
    for m0 in range(0, M, BLOCK_M):
        mm = m0 + mm0
        w = tl.load(w_ptr + mm[:, None] * s_wm + k[None, :] * s_wk,
                    mask=(mm[:, None] < M) & (k[None, :] < K), other=0.0).to(tl.float32)  # [BM, BK]
        c, y_log = _out_coef(g_ptr, yl_ptr, ys_ptr, bb[:, None], mm[None, :], B, M, s_gb, s_gm)  # [BB, BM]
        e = tl.exp(tl.log(tl.abs(w))[None, :, :] + xl[:, None, :] - y_log[:, :, None])  # [BB, BM, BK]
        term = (c[:, :, None] * tl.where(w < 0, -1.0, 1.0)[None, :, :]) * e
        acc += tl.sum(tl.where(c[:, :, None] != 0.0, term, 0.0), axis=1)
    tl.store(dx_ptr + bb[:, None] * K + k[None, :], (acc * xs).to(dx_ptr.dtype.element_ty),
             mask=(bb[:, None] < B) & (k[None, :] < K))


@triton.jit
def _dw_kernel(xl_ptr, xs_ptr, yl_ptr, ys_ptr, g_ptr, dw_ptr, B, M, K,
               s_xlb, s_xlk, s_xsb, s_xsk, s_gb, s_gm,
               BLOCK_B: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr):
    """dw[i, j] = sum_b c_bi x_sign_bj exp(x_log_bj - y_log_bi)."""
    mm = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)
    k = tl.program_id(0) * BLOCK_K + tl.arange(0, BLOCK_K)
    bb0 = tl.arange(0, BLOCK_B)
    acc = tl.zeros([BLOCK_M, BLOCK_K], tl.float32)
    for b0 in range(0, B, BLOCK_B):
        bb = b0 + bb0
        xl, xs = _load_x(xl_ptr, xs_ptr, bb, k, B, K, s_xlb, s_xlk, s_xsb, s_xsk)  # [BB, BK]
        c, y_log = _out_coef(g_ptr, yl_ptr, ys_ptr, bb[None, :], mm[:, None], B, M, s_gb, s_gm)  # [BM, BB]
        e = tl.exp(xl[None, :, :] - y_log[:, :, None])  # [BM, BB, BK]
        term = c[:, :, None] * (xs[None, :, :] * e)
        acc += tl.sum(tl.where(c[:, :, None] != 0.0, term, 0.0), axis=1)
    tl.store(dw_ptr + mm[:, None] * K + k[None, :], acc.to(dw_ptr.dtype.element_ty),
             mask=(mm[:, None] < M) & (k[None, :] < K))


def _blocks(B, M, K):
    return (min(BLOCK_B, triton.next_power_of_2(B)), min(BLOCK_M, triton.next_power_of_2(M)),
            min(BLOCK_K, triton.next_power_of_2(K)))


def _warps(bb, bm, bk):
    """8 warps for the full [8, 32, 32] term tile (64 float32 a thread at 4 warps: the
    forward needed 255 registers and spilled in bfloat16, ptxas for sm_90), else 4."""
    return 8 if bb * bm * bk >= BLOCK_B * BLOCK_M * BLOCK_K else 4


class _LogspaceMatvec(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w, x_log, x_sign):
        w, x_log, x_sign = w.detach(), x_log.detach(), x_sign.detach()
        (M, K), B = w.shape, x_log.shape[0]
        y_log = new_output((B, M), w.dtype, w.device)
        y_sign = new_output((B, M), w.dtype, w.device)
        need_f32 = any(ctx.needs_input_grad[:2]) and w.dtype != torch.float32
        y_log32 = torch.empty((B, M), dtype=torch.float32, device=w.device) if need_f32 else y_log
        bb, bm, bk = _blocks(B, M, K)
        _fwd_kernel[(triton.cdiv(M, bm), triton.cdiv(B, bb))](
            w, x_log, x_sign, y_log, y_sign, y_log32, B, M, K, *w.stride(), *x_log.stride(), *x_sign.stride(),
            BLOCK_B=bb, BLOCK_M=bm, BLOCK_K=bk, STORE_F32=need_f32, num_warps=_warps(bb, bm, bk))
        ctx.save_for_backward(w, x_log, x_sign, y_log32, y_sign)
        ctx.mark_non_differentiable(y_sign)
        return y_log, y_sign

    @staticmethod
    def backward(ctx, g, _g_sign):
        w, x_log, x_sign, y_log32, y_sign = ctx.saved_tensors
        (M, K), B = w.shape, x_log.shape[0]
        bb, bm, bk = _blocks(B, M, K)
        dw = dx = None
        if ctx.needs_input_grad[1]:
            dx = torch.empty((B, K), dtype=x_log.dtype, device=x_log.device)
            _dx_kernel[(triton.cdiv(K, bk), triton.cdiv(B, bb))](
                w, x_log, x_sign, y_log32, y_sign, g, dx, B, M, K,
                *w.stride(), *x_log.stride(), *x_sign.stride(), *g.stride(), BLOCK_B=bb, BLOCK_M=bm, BLOCK_K=bk,
                num_warps=_warps(bb, bm, bk))
        if ctx.needs_input_grad[0]:
            dw = torch.empty((M, K), dtype=w.dtype, device=w.device)
            _dw_kernel[(triton.cdiv(K, bk), triton.cdiv(M, bm))](
                x_log, x_sign, y_log32, y_sign, g, dw, B, M, K,
                *x_log.stride(), *x_sign.stride(), *g.stride(), BLOCK_B=bb, BLOCK_M=bm, BLOCK_K=bk,
                num_warps=_warps(bb, bm, bk))
        return dw, dx, None


@implements("logspace_matvec", dtypes=(torch.float32, torch.bfloat16))
def logspace_matvec(w, x_log, x_sign):
    return _LogspaceMatvec.apply(w, x_log, x_sign)
