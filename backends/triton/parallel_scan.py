"""parallel_scan, Triton: two forms, chosen by shape.

- chunked: one program per (batch, block of channels) walks time in tiles of BLOCK_T
  steps; within a tile tl.associative_scan composes the (a, b) pairs, and the state
  leaving a tile is the carry into the next. For long sequences.
- sequential: one program per (batch, block of channels) steps through time with the
  state in registers, one row per step. For short sequences, or when B*D alone fills
  the GPU (then a scan's extra work buys nothing).

The backward is the same recurrence run in reverse on shifted gates,
g_t = dh_t + a_{t+1} g_{t+1}: tiles are loaded in descending time, so the forward scan
along the tile's rows is the reverse scan in time.
"""

import torch
import triton
import triton.language as tl

from backends.registry import implements, new_output
from backends.triton._common import (CHUNKED_CONFIGS, RECURRENCE_KEY, SEQUENTIAL_CONFIGS, channel_grid, channels,
                                     contiguous, initial_state, linear_scan, row, sequential_form,
                                     time_tile)


@triton.autotune(configs=CHUNKED_CONFIGS, key=RECURRENCE_KEY)
@triton.jit
def _forward_chunked(a, b, h0, h, B, T, D, HAS_H0: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr):
    pb, d, dmask, base = channels(T, D, BLOCK_D)
    rows = tl.arange(0, BLOCK_T)
    carry = initial_state(h0, pb, d, dmask, D, HAS_H0)
    for t0 in range(0, T, BLOCK_T):
        t = t0 + rows  # [BLOCK_T]
        off, m = time_tile(base, t, d, dmask, T, D)
        av = tl.load(a + off, mask=m, other=1.0).to(tl.float32)  # padding: identity steps
        bv = tl.load(b + off, mask=m, other=0.0).to(tl.float32)
        states = linear_scan(av, bv, carry)
        tl.store(h + off, states.to(h.dtype.element_ty), mask=m)
        carry = row(states, rows, BLOCK_T - 1)


@triton.autotune(configs=SEQUENTIAL_CONFIGS, key=RECURRENCE_KEY)
@triton.jit
def _forward_sequential(a, b, h0, h, B, T, D, HAS_H0: tl.constexpr, BLOCK_D: tl.constexpr):
    pb, d, dmask, base = channels(T, D, BLOCK_D)
    state = initial_state(h0, pb, d, dmask, D, HAS_H0)
    off = base + d  # [BLOCK_D], row t = 0
    for _ in range(T):
        av = tl.load(a + off, mask=dmask, other=0.0).to(tl.float32)
        bv = tl.load(b + off, mask=dmask, other=0.0).to(tl.float32)
        state = av * state + bv
        tl.store(h + off, state.to(h.dtype.element_ty), mask=dmask)
        off += D


@triton.autotune(configs=CHUNKED_CONFIGS, key=RECURRENCE_KEY)
@triton.jit
def _backward_chunked(a, h, h0, dh, da, db, dh0, B, T, D, HAS_H0: tl.constexpr,
                      BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr):
    pb, d, dmask, base = channels(T, D, BLOCK_D)
    rows = tl.arange(0, BLOCK_T)
    h0v = initial_state(h0, pb, d, dmask, D, HAS_H0)
    carry = tl.zeros([BLOCK_D], dtype=tl.float32)  # g_{t+1} entering the tile; g_T = 0
    for t_end in range(0, T, BLOCK_T):
        t = T - 1 - t_end - rows  # [BLOCK_T], descending time along the rows
        off, m = time_tile(base, t, d, dmask, T, D)
        a_next = tl.load(a + off + D, mask=m & (t < T - 1)[:, None], other=0.0).to(tl.float32)
        coef = tl.where((t >= 0)[:, None], a_next, 1.0)  # padding rows (t < 0): identity steps
        g = linear_scan(coef, tl.load(dh + off, mask=m, other=0.0).to(tl.float32), carry)
        h_prev = tl.load(h + off - D, mask=m & (t > 0)[:, None], other=0.0).to(tl.float32)
        h_prev = tl.where((t == 0)[:, None], h0v[None, :], h_prev)
        tl.store(da + off, (g * h_prev).to(da.dtype.element_ty), mask=m)
        tl.store(db + off, g.to(db.dtype.element_ty), mask=m)
        carry = row(g, rows, BLOCK_T - 1)  # g at the tile's earliest step (g_0 after the last)
    if HAS_H0:
        a0 = tl.load(a + base + d, mask=dmask, other=0.0).to(tl.float32)
        tl.store(dh0 + pb * D + d, (a0 * carry).to(dh0.dtype.element_ty), mask=dmask)


@triton.autotune(configs=SEQUENTIAL_CONFIGS, key=RECURRENCE_KEY)
@triton.jit
def _backward_sequential(a, h, h0, dh, da, db, dh0, B, T, D, HAS_H0: tl.constexpr, BLOCK_D: tl.constexpr):
    pb, d, dmask, base = channels(T, D, BLOCK_D)
    h0v = initial_state(h0, pb, d, dmask, D, HAS_H0)
    g = tl.zeros([BLOCK_D], dtype=tl.float32)
    a_next = tl.zeros([BLOCK_D], dtype=tl.float32)  # a_{t+1}; its value at t = T-1 is unused (g = 0)
    off = (pb + 1).to(tl.int64) * T * D - D + d  # [BLOCK_D], row t = T-1 (int64 before any product)
    for i in range(T):
        t = T - 1 - i
        g = a_next * g + tl.load(dh + off, mask=dmask, other=0.0).to(tl.float32)
        h_prev = tl.load(h + tl.where(t > 0, off - D, off), mask=dmask, other=0.0).to(tl.float32)  # row t-1
        h_prev = tl.where(t > 0, h_prev, h0v)
        tl.store(da + off, (g * h_prev).to(da.dtype.element_ty), mask=dmask)
        tl.store(db + off, g.to(db.dtype.element_ty), mask=dmask)
        a_next = tl.load(a + off, mask=dmask, other=0.0).to(tl.float32)
        off -= D
    if HAS_H0:
        tl.store(dh0 + pb * D + d, (a_next * g).to(dh0.dtype.element_ty), mask=dmask)


class _Scan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b, h0):
        a, b, h0 = contiguous(a, b, h0)  # [B, T, D], [B, T, D], [B, D] or None
        B, T, D = a.shape
        h = new_output(a.shape, a.dtype, a.device)
        if h.numel() == 0:  # nothing to launch over; the kernels assume T >= 1
            ctx.save_for_backward(a, h, h0)
            return h
        kernel = _forward_sequential if sequential_form(B, T, D, a.device) else _forward_chunked
        kernel[channel_grid(B, D)](a, b, h0, h, B, T, D, HAS_H0=h0 is not None)
        ctx.save_for_backward(a, h, h0)
        return h

    @staticmethod
    def backward(ctx, dh):
        a, h, h0 = ctx.saved_tensors
        (dh,) = contiguous(dh)
        B, T, D = a.shape
        da, db = torch.empty_like(a), torch.empty_like(a)
        dh0 = None if h0 is None else torch.empty_like(h0)
        if a.numel() == 0:
            return da, db, None if h0 is None else torch.zeros_like(h0)
        kernel = _backward_sequential if sequential_form(B, T, D, a.device) else _backward_chunked
        kernel[channel_grid(B, D)](a, h, h0, dh, da, db, dh0, B, T, D, HAS_H0=h0 is not None)
        return da, db, dh0


@implements("parallel_scan", dtypes=(torch.float32, torch.bfloat16))
def parallel_scan(a, b, h0=None):
    return _Scan.apply(a, b, h0)
