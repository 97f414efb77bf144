"""nsm_route, Triton: logits, top-k softmax and the weighted sum in one kernel.

Forward: a program owns batch row b, one split of the tokens and one block of features.
Per tile of BLOCK_T tokens it forms the logits [BLOCK_T, S] (a dot over D), picks the
top-k (k rounds of a masked row max, the lowest index among equals), takes the softmax
over the kept logits, zeroes padding tokens, stores the weights, and accumulates
states[b, :, block] += weights^T x[b, tile, block] in registers. When D fits one block
(the common case) x is read once for both uses. Splits of the tokens (there to fill the
GPU when B is small) write float32 partial states that a second kernel sums.

Backward: the weights are recomputed (the same code and block sizes as the forward, so
the same top-k), then per token
    G = dweights + x dstates^T,  dlogits = w (G - sum_s w G),
    dx = w dstates + dlogits w_route,
and a second kernel reduces dw_route = dlogits^T x and db = sum dlogits over the tokens,
in splits summed by the same reduction kernel.
"""

import torch
import triton
import triton.language as tl

from backends.registry import implements, new_output
from backends.triton._common import sm_count

BLOCK_T = 32  # tokens per tile
MAX_BLOCK_D = 128  # feature block: D up to this is read once per token tile
TILE = 8192  # elements of a [BLOCK_S, BLOCK_D] tile at most (32 KB in float32)
PROGRAMS_PER_SM = 4  # the token splits aim at this many programs per SM (4 in all under the interpreter)


@triton.jit
def _logits(x_ptr, w_ptr, b_ptr, b, t, S, D, s_xb, s_xt, s_xd, s_ws, s_wd, s_b,
            HAS_BIAS: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr):
    """(logits [BLOCK_T, BLOCK_S] float32, the last x tile [BLOCK_T, BLOCK_D]) for tokens t of row b."""
    s = tl.arange(0, BLOCK_S)
    d0 = tl.arange(0, BLOCK_D)
    acc = tl.zeros([BLOCK_T, BLOCK_S], tl.float32)
    xt = tl.zeros([BLOCK_T, BLOCK_D], tl.float32)
    for k in range(0, D, BLOCK_D):
        d = k + d0
        xt = tl.load(x_ptr + b * s_xb + t[:, None] * s_xt + d[None, :] * s_xd,
                     mask=(t[:, None] >= 0) & (d[None, :] < D), other=0.0).to(tl.float32)
        wt = tl.load(w_ptr + s[:, None] * s_ws + d[None, :] * s_wd,
                     mask=(s[:, None] < S) & (d[None, :] < D), other=0.0).to(tl.float32)  # [BS, BD]
        acc += tl.dot(xt, tl.trans(wt), input_precision="ieee")
    if HAS_BIAS:
        acc += tl.load(b_ptr + s * s_b, mask=s < S, other=0.0).to(tl.float32)[None, :]
    return acc, xt


@triton.jit
def _route(logits, live, S, top_k, TOP_K: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_S: tl.constexpr):
    """Weights [BLOCK_T, BLOCK_S]: softmax over the kept logits, 0 elsewhere and on rows
    that are not live (padding tokens, rows past T)."""
    s = tl.arange(0, BLOCK_S)[None, :]
    keep = tl.broadcast_to(s < S, [BLOCK_T, BLOCK_S])
    if TOP_K:
        cand = keep
        keep = cand & (s < 0)
        for _ in range(top_k):
            m = tl.max(tl.where(cand, logits, float("-inf")), axis=1)
            first = tl.min(tl.where(cand & (logits == m[:, None]), s, BLOCK_S), axis=1)  # ties: lower index
            pick = s == first[:, None]
            keep = keep | pick
            cand = cand & ~pick
    m = tl.max(tl.where(keep, logits, float("-inf")), axis=1)
    e = tl.where(keep, tl.exp(logits - m[:, None]), 0.0)
    w = e / tl.sum(e, axis=1)[:, None]
    return tl.where(live[:, None] & keep, w, 0.0)


@triton.jit
def _tile_weights(x_ptr, w_ptr, b_ptr, mask_ptr, b, t, T, S, D, top_k, s_xb, s_xt, s_xd, s_ws, s_wd, s_b, s_mb, s_mt,
                  HAS_BIAS: tl.constexpr, HAS_MASK: tl.constexpr, TOP_K: tl.constexpr,
                  BLOCK_T: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr):
    """(weights, last x tile) of the tokens t [BLOCK_T] of row b; rows t >= T load nothing."""
    tt = tl.where(t < T, t, -1)  # -1 masks the loads of rows past T
    logits, xt = _logits(x_ptr, w_ptr, b_ptr, b, tt, S, D, s_xb, s_xt, s_xd, s_ws, s_wd, s_b,
                         HAS_BIAS, BLOCK_T, BLOCK_S, BLOCK_D)
    live = t < T
    if HAS_MASK:
        live = live & (tl.load(mask_ptr + b * s_mb + t * s_mt, mask=t < T, other=0) != 0)
    return _route(logits, live, S, top_k, TOP_K, BLOCK_T, BLOCK_S), xt


@triton.jit
def _fwd_kernel(x_ptr, w_ptr, b_ptr, mask_ptr, wt_ptr, out_ptr, T, S, D, top_k, tiles_per_split,
                s_xb, s_xt, s_xd, s_ws, s_wd, s_b, s_mb, s_mt,
                HAS_BIAS: tl.constexpr, HAS_MASK: tl.constexpr, TOP_K: tl.constexpr, ONE_D: tl.constexpr,
                BLOCK_T: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr):
    """out: states [B, S, D] (one split) or float32 partials [B, splits, S, D]."""
    b, split, pd = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    s = tl.arange(0, BLOCK_S)
    d = pd * BLOCK_D + tl.arange(0, BLOCK_D)
    acc = tl.zeros([BLOCK_S, BLOCK_D], tl.float32)  # states[b, :, block] of this split
    for i in range(split * tiles_per_split, (split + 1) * tiles_per_split):
        t = i * BLOCK_T + tl.arange(0, BLOCK_T)
        wts, xt = _tile_weights(x_ptr, w_ptr, b_ptr, mask_ptr, b, t, T, S, D, top_k, s_xb, s_xt, s_xd, s_ws, s_wd,
                                s_b, s_mb, s_mt, HAS_BIAS, HAS_MASK, TOP_K, BLOCK_T, BLOCK_S, BLOCK_D)
        if pd == 0:
            tl.store(wt_ptr + (b * T + t[:, None]) * S + s[None, :], wts.to(wt_ptr.dtype.element_ty),
                     mask=(t[:, None] < T) & (s[None, :] < S))
        if not ONE_D:
            xt = tl.load(x_ptr + b * s_xb + t[:, None] * s_xt + d[None, :] * s_xd,
                         mask=(t[:, None] < T) & (d[None, :] < D), other=0.0).to(tl.float32)
        acc += tl.dot(tl.trans(wts), xt, input_precision="ieee")
    base = (b * tl.num_programs(1) + split) * S * D
    tl.store(out_ptr + base + s[:, None] * D + d[None, :], acc.to(out_ptr.dtype.element_ty),
             mask=(s[:, None] < S) & (d[None, :] < D))


@triton.jit
def _sum_splits_kernel(src_ptr, dst_ptr, splits, R, BLOCK: tl.constexpr):
    """dst[g, r] = sum_c src[g, c, r] (float32 partials, contiguous)."""
    g = tl.program_id(0)
    r = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    acc = tl.zeros([BLOCK], tl.float32)
    for c in range(splits):
        acc += tl.load(src_ptr + (g * splits + c) * R + r, mask=r < R, other=0.0)
    tl.store(dst_ptr + g * R + r, acc.to(dst_ptr.dtype.element_ty), mask=r < R)


@triton.jit
def _bwd_tokens_kernel(x_ptr, w_ptr, b_ptr, mask_ptr, gs_ptr, gw_ptr, dl_ptr, dx_ptr, T, S, D, top_k,
                       s_xb, s_xt, s_xd, s_ws, s_wd, s_b, s_mb, s_mt, s_gsb, s_gss, s_gsd, s_gwb, s_gwt, s_gws,
                       HAS_BIAS: tl.constexpr, HAS_MASK: tl.constexpr, TOP_K: tl.constexpr,
                       BLOCK_T: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr):
    """dlogits (float32 [B, T, S]) and dx for one tile of tokens."""
    b = tl.program_id(0)
    t = tl.program_id(1) * BLOCK_T + tl.arange(0, BLOCK_T)
    s = tl.arange(0, BLOCK_S)
    d0 = tl.arange(0, BLOCK_D)
    wts, _ = _tile_weights(x_ptr, w_ptr, b_ptr, mask_ptr, b, t, T, S, D, top_k, s_xb, s_xt, s_xd, s_ws, s_wd,
                           s_b, s_mb, s_mt, HAS_BIAS, HAS_MASK, TOP_K, BLOCK_T, BLOCK_S, BLOCK_D)
    ts_mask = (t[:, None] < T) & (s[None, :] < S)
    g = tl.load(gw_ptr + b * s_gwb + t[:, None] * s_gwt + s[None, :] * s_gws, mask=ts_mask, other=0.0).to(tl.float32)
    for k in range(0, D, BLOCK_D):  # G = dweights + x dstates^T
        d = k + d0
        xt = tl.load(x_ptr + b * s_xb + t[:, None] * s_xt + d[None, :] * s_xd,
                     mask=(t[:, None] < T) & (d[None, :] < D), other=0.0).to(tl.float32)
        gs = tl.load(gs_ptr + b * s_gsb + s[:, None] * s_gss + d[None, :] * s_gsd,
                     mask=(s[:, None] < S) & (d[None, :] < D), other=0.0).to(tl.float32)  # [BS, BD]
        g += tl.dot(xt, tl.trans(gs), input_precision="ieee")
    dl = wts * (g - tl.sum(wts * g, axis=1)[:, None])  # [BT, BS]; 0 off the kept logits and on padding
    tl.store(dl_ptr + (b * T + t[:, None]) * S + s[None, :], dl, mask=ts_mask)
    for k in range(0, D, BLOCK_D):
        d = k + d0
        sd_mask = (s[:, None] < S) & (d[None, :] < D)
        gs = tl.load(gs_ptr + b * s_gsb + s[:, None] * s_gss + d[None, :] * s_gsd, mask=sd_mask,
                     other=0.0).to(tl.float32)
        wr = tl.load(w_ptr + s[:, None] * s_ws + d[None, :] * s_wd, mask=sd_mask, other=0.0).to(tl.float32)
        dx = tl.dot(wts, gs, input_precision="ieee") + tl.dot(dl, wr, input_precision="ieee")  # [BT, BD]
        tl.store(dx_ptr + (b * T + t[:, None]) * D + d[None, :], dx.to(dx_ptr.dtype.element_ty),
                 mask=(t[:, None] < T) & (d[None, :] < D))


@triton.jit
def _bwd_params_kernel(x_ptr, dl_ptr, dw_ptr, db_ptr, T, S, D, rows, rows_per_split, s_xb, s_xt, s_xd,
                       HAS_BIAS: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr):
    """Partials over the flattened tokens r = b T + t of one split:
    dw [splits, S, D] = dlogits^T x, db [splits, S] = sum dlogits (float32, or the outputs)."""
    split, pd = tl.program_id(0), tl.program_id(1)
    s = tl.arange(0, BLOCK_S)
    d = pd * BLOCK_D + tl.arange(0, BLOCK_D)
    acc = tl.zeros([BLOCK_S, BLOCK_D], tl.float32)
    acc_b = tl.zeros([BLOCK_S], tl.float32)
    for r0 in range(split * rows_per_split, tl.minimum((split + 1) * rows_per_split, rows), BLOCK_T):
        r = r0 + tl.arange(0, BLOCK_T)
        live = r < tl.minimum((split + 1) * rows_per_split, rows)
        dl = tl.load(dl_ptr + r[:, None] * S + s[None, :], mask=live[:, None] & (s[None, :] < S), other=0.0)  # [BT, BS]
        xt = tl.load(x_ptr + (r // T)[:, None] * s_xb + (r % T)[:, None] * s_xt + d[None, :] * s_xd,
                     mask=live[:, None] & (d[None, :] < D), other=0.0).to(tl.float32)
        acc += tl.dot(tl.trans(dl), xt, input_precision="ieee")
        acc_b += tl.sum(dl, axis=0)
    tl.store(dw_ptr + split * S * D + s[:, None] * D + d[None, :], acc.to(dw_ptr.dtype.element_ty),
             mask=(s[:, None] < S) & (d[None, :] < D))
    if HAS_BIAS:
        if pd == 0:
            tl.store(db_ptr + split * S + s, acc_b.to(db_ptr.dtype.element_ty), mask=s < S)


def _splits(work_items, programs_per_item, device) -> int:
    """How many splits of ``work_items`` (token tiles) fill the machine: about
    PROGRAMS_PER_SM programs per SM (one SM under the interpreter)."""
    return max(1, min(work_items, triton.cdiv(PROGRAMS_PER_SM * sm_count(device), programs_per_item)))


def _sum_splits(partial, out):
    """out [G, R] = partial [G, splits, R] summed over the splits."""
    G, splits, R = partial.shape
    block = min(1024, triton.next_power_of_2(R))
    _sum_splits_kernel[(G, triton.cdiv(R, block))](partial, out, splits, R, BLOCK=block)


def _blocks(S, D):
    """(BLOCK_S, BLOCK_D): every state in one tile (the softmax is over S), and a feature
    block that keeps the [BLOCK_S, BLOCK_D] weight and state tiles to TILE elements: at
    S = 256 and BLOCK_D = 128 the forward needed 295 KB of shared memory and the token
    backward 606 KB (more than either chip has; ptxas, sm_90)."""
    block_s = max(16, triton.next_power_of_2(S))
    return block_s, min(MAX_BLOCK_D, max(16, triton.next_power_of_2(D)), max(16, TILE // block_s))


def _warps(block_s, block_d):
    """8 warps once a tile ([BLOCK_T or BLOCK_S, BLOCK_D] or the [BLOCK_T, BLOCK_S]
    routing tiles) reaches 4,096 elements: with x, the weights and the routing tiles
    live together, 4 warps spilled past 255 registers (the token backward in bfloat16 at
    BLOCK_D = 128; every kernel at BLOCK_S = 256); 4 below."""
    return 8 if max(BLOCK_T * block_d, block_s * block_d, BLOCK_T * block_s) >= 4096 else 4


class _NsmRoute(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w_route, b_route, mask, top_k):
        x, w_route = x.detach(), w_route.detach()
        b_route = None if b_route is None else b_route.detach()
        B, T, D = x.shape
        S = w_route.shape[0]
        block_s, block_d = _blocks(S, D)
        n_d = triton.cdiv(D, block_d)
        tiles = triton.cdiv(T, BLOCK_T)
        splits = _splits(tiles, B * n_d, x.device)
        per_split = triton.cdiv(tiles, splits)
        splits = triton.cdiv(tiles, per_split)
        weights = new_output((B, T, S), x.dtype, x.device)
        states = new_output((B, S, D), x.dtype, x.device)
        partial = states if splits == 1 else torch.empty((B, splits, S, D), dtype=torch.float32, device=x.device)
        mask_u8 = None if mask is None else mask.view(torch.uint8)
        args = _kernel_args(x, w_route, b_route, mask_u8)
        _fwd_kernel[(B, splits, n_d)](
            x, w_route, args["bias"], args["mask"], weights, partial, T, S, D, top_k or S, per_split,
            *args["strides"], HAS_BIAS=b_route is not None, HAS_MASK=mask is not None, TOP_K=top_k is not None,
            ONE_D=n_d == 1, BLOCK_T=BLOCK_T, BLOCK_S=block_s, BLOCK_D=block_d,
            num_warps=_warps(block_s, block_d))
        if splits > 1:
            _sum_splits(partial.view(B, splits, S * D), states.view(B, S * D))
        ctx.save_for_backward(x, w_route, b_route, mask_u8)
        ctx.top_k = top_k
        return states, weights

    @staticmethod
    def backward(ctx, g_states, g_weights):
        x, w_route, b_route, mask_u8 = ctx.saved_tensors
        B, T, D = x.shape
        S = w_route.shape[0]
        block_s, block_d = _blocks(S, D)
        args = _kernel_args(x, w_route, b_route, mask_u8)
        flags = dict(HAS_BIAS=b_route is not None, HAS_MASK=mask_u8 is not None, TOP_K=ctx.top_k is not None,
                     BLOCK_T=BLOCK_T, BLOCK_S=block_s, BLOCK_D=block_d)
        dl = torch.empty((B, T, S), dtype=torch.float32, device=x.device)  # dlogits
        dx = torch.empty((B, T, D), dtype=x.dtype, device=x.device)
        _bwd_tokens_kernel[(B, triton.cdiv(T, BLOCK_T))](
            x, w_route, args["bias"], args["mask"], g_states, g_weights, dl, dx, T, S, D, ctx.top_k or S,
            *args["strides"], *g_states.stride(), *g_weights.stride(), num_warps=_warps(block_s, block_d),
            num_stages=1, **flags)  # unpipelined: at S = 256 three stages of its tiles took 197 KB (A100: 163)
        n_d = triton.cdiv(D, block_d)
        rows = B * T
        splits = _splits(triton.cdiv(rows, BLOCK_T), n_d, x.device)
        per_split = triton.cdiv(triton.cdiv(rows, splits), BLOCK_T) * BLOCK_T
        splits = triton.cdiv(rows, per_split)
        dw = torch.empty((S, D), dtype=w_route.dtype, device=x.device)
        db = None if b_route is None else torch.empty((S,), dtype=b_route.dtype, device=x.device)
        dw_part, db_part = dw, db
        if splits > 1:
            dw_part = torch.empty((splits, S, D), dtype=torch.float32, device=x.device)
            db_part = None if db is None else torch.empty((splits, S), dtype=torch.float32, device=x.device)
        _bwd_params_kernel[(splits, n_d)](
            x, dl, dw_part, dw_part if db_part is None else db_part, T, S, D, rows, per_split, *x.stride(),
            HAS_BIAS=b_route is not None, BLOCK_T=BLOCK_T, BLOCK_S=block_s, BLOCK_D=block_d,
            num_warps=_warps(block_s, block_d))
        if splits > 1:
            _sum_splits(dw_part.view(1, splits, S * D), dw.view(1, S * D))
            if db is not None:
                _sum_splits(db_part.view(1, splits, S), db.view(1, S))
        return dx, dw, db, None, None


def _kernel_args(x, w_route, b_route, mask_u8):
    """Pointers for the optional tensors (x stands in when absent; never read) and the
    strides of x, w_route, b_route and the mask."""
    b_stride = 0 if b_route is None else b_route.stride(0)
    m_strides = (0, 0) if mask_u8 is None else mask_u8.stride()
    return {"bias": x if b_route is None else b_route, "mask": x if mask_u8 is None else mask_u8,
            "strides": (*x.stride(), *w_route.stride(), b_stride, *m_strides)}


@implements("nsm_route", dtypes=(torch.float32, torch.bfloat16))
def nsm_route(x, w_route, b_route=None, mask=None, top_k=None):
    return _NsmRoute.apply(x, w_route, b_route, mask, top_k)
