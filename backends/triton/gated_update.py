"""gated_update, Triton.

Forward, one program per (batch, block of channels):
- with a bound the recurrence is nonlinear, so the program steps through time with the
  state in registers (sequential in t, parallel over B*D);
- without a bound it is a cumulative sum of the gated inputs u_t = tanh(a_t) sigmoid(b_t):
  tiles of time are summed with tl.cumsum and the total carried into the next tile (the
  sequential form is kept for short sequences and when B*D alone fills the GPU).

Backward, for both: q_t = dL/du_t = c_t (dh_t + q_{t+1}) with c_t = 1 - (h_t / bound)^2
(c_t = 1 without a bound), a linear reverse scan, chunked like parallel_scan's backward
(or sequential, by the same shape rule); then da, db from q through the gates, dh0 = q_0.
"""

import torch
import triton
import triton.language as tl

from backends.registry import implements, new_output
from backends.triton._common import (CHUNKED_CONFIGS, RECURRENCE_KEY, SEQUENTIAL_CONFIGS, channel_grid, channels,
                                     contiguous, initial_state, linear_scan, row, sequential_form, sigmoid, tanh,
                                     time_tile)


@triton.jit
def _gate(av, bv):
    return tanh(av) * sigmoid(bv)


@triton.jit
def _gate_grads(q, av, bv):
    """(da, db) from q = dL/du through u = tanh(a) sigmoid(b)."""
    ta, sb = tanh(av), sigmoid(bv)
    return q * (1.0 - ta * ta) * sb, q * ta * sb * (1.0 - sb)


@triton.jit
def _slope(h_ptrs, mask, bound, HAS_BOUND: tl.constexpr):
    """c = dh_t / dz_t at the states h_ptrs: 1 - (h / bound)^2, or 1 without a bound
    (h is then not read). Masked-off elements read h = 0, so c = 1 there."""
    c = tl.full(mask.shape, 1.0, tl.float32)
    if HAS_BOUND:
        r = tl.load(h_ptrs, mask=mask, other=0.0).to(tl.float32) / bound
        c = 1.0 - r * r
    return c


@triton.autotune(configs=SEQUENTIAL_CONFIGS, key=RECURRENCE_KEY)
@triton.jit
def _forward_sequential(a, b, h0, h, bound, B, T, D, HAS_H0: tl.constexpr, HAS_BOUND: tl.constexpr,
                        BLOCK_D: tl.constexpr):
    pb, d, dmask, base = channels(T, D, BLOCK_D)
    state = initial_state(h0, pb, d, dmask, D, HAS_H0)
    off = base + d  # [BLOCK_D], row t = 0
    for _ in range(T):
        av = tl.load(a + off, mask=dmask, other=0.0).to(tl.float32)
        bv = tl.load(b + off, mask=dmask, other=0.0).to(tl.float32)
        state = state + _gate(av, bv)
        if HAS_BOUND:
            state = bound * tanh(state / bound)
        tl.store(h + off, state.to(h.dtype.element_ty), mask=dmask)
        off += D


@triton.autotune(configs=CHUNKED_CONFIGS, key=RECURRENCE_KEY)
@triton.jit
def _forward_cumsum(a, b, h0, h, B, T, D, HAS_H0: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr):
    pb, d, dmask, base = channels(T, D, BLOCK_D)
    rows = tl.arange(0, BLOCK_T)
    carry = initial_state(h0, pb, d, dmask, D, HAS_H0)
    for t0 in range(0, T, BLOCK_T):
        t = t0 + rows  # [BLOCK_T]
        off, m = time_tile(base, t, d, dmask, T, D)
        av = tl.load(a + off, mask=m, other=0.0).to(tl.float32)  # padding: u = tanh(0) sigmoid(0) = 0
        bv = tl.load(b + off, mask=m, other=0.0).to(tl.float32)
        states = tl.cumsum(_gate(av, bv), 0) + carry[None, :]
        tl.store(h + off, states.to(h.dtype.element_ty), mask=m)
        carry = row(states, rows, BLOCK_T - 1)


@triton.autotune(configs=SEQUENTIAL_CONFIGS, key=RECURRENCE_KEY)
@triton.jit
def _backward_sequential(a, b, h, dh, da, db, dh0, bound, B, T, D, HAS_H0: tl.constexpr, HAS_BOUND: tl.constexpr,
                         BLOCK_D: tl.constexpr):
    pb, d, dmask, base = channels(T, D, BLOCK_D)
    q = tl.zeros([BLOCK_D], dtype=tl.float32)  # q_{t+1}; q_T = 0
    off = (pb + 1).to(tl.int64) * T * D - D + d  # [BLOCK_D], row t = T-1 (int64 before any product)
    for _ in range(T):
        q = _slope(h + off, dmask, bound, HAS_BOUND) * (tl.load(dh + off, mask=dmask, other=0.0).to(tl.float32) + q)
        av = tl.load(a + off, mask=dmask, other=0.0).to(tl.float32)
        bv = tl.load(b + off, mask=dmask, other=0.0).to(tl.float32)
        ga, gb = _gate_grads(q, av, bv)
        tl.store(da + off, ga.to(da.dtype.element_ty), mask=dmask)
        tl.store(db + off, gb.to(db.dtype.element_ty), mask=dmask)
        off -= D
    if HAS_H0:
        tl.store(dh0 + pb * D + d, q.to(dh0.dtype.element_ty), mask=dmask)


@triton.autotune(configs=CHUNKED_CONFIGS, key=RECURRENCE_KEY)
@triton.jit
def _backward_chunked(a, b, h, dh, da, db, dh0, bound, B, T, D, HAS_H0: tl.constexpr, HAS_BOUND: tl.constexpr,
                      BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr):
    pb, d, dmask, base = channels(T, D, BLOCK_D)
    rows = tl.arange(0, BLOCK_T)
    carry = tl.zeros([BLOCK_D], dtype=tl.float32)  # q_{t+1} entering the tile; q_T = 0
    for t_end in range(0, T, BLOCK_T):
        t = T - 1 - t_end - rows  # [BLOCK_T], descending time along the rows
        off, m = time_tile(base, t, d, dmask, T, D)
        c = _slope(h + off, m, bound, HAS_BOUND)  # padding rows (t < 0): c = 1, dh = 0, identity steps
        q = linear_scan(c, c * tl.load(dh + off, mask=m, other=0.0).to(tl.float32), carry)
        av = tl.load(a + off, mask=m, other=0.0).to(tl.float32)
        bv = tl.load(b + off, mask=m, other=0.0).to(tl.float32)
        ga, gb = _gate_grads(q, av, bv)
        tl.store(da + off, ga.to(da.dtype.element_ty), mask=m)
        tl.store(db + off, gb.to(db.dtype.element_ty), mask=m)
        carry = row(q, rows, BLOCK_T - 1)  # q at the tile's earliest step (q_0 after the last)
    if HAS_H0:
        tl.store(dh0 + pb * D + d, carry.to(dh0.dtype.element_ty), mask=dmask)


class _GatedUpdate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b, h0, bound):
        a, b, h0 = contiguous(a, b, h0)  # [B, T, D], [B, T, D], [B, D] or None
        B, T, D = a.shape
        h = new_output(a.shape, a.dtype, a.device)
        ctx.save_for_backward(a, b, h, h0)
        ctx.bound = bound
        if h.numel() == 0:  # nothing to launch over; the kernels assume T >= 1
            return h
        grid = channel_grid(B, D)
        if bound is not None or sequential_form(B, T, D, a.device):
            _forward_sequential[grid](a, b, h0, h, float(bound or 1.0), B, T, D, HAS_H0=h0 is not None,
                                      HAS_BOUND=bound is not None)
        else:
            _forward_cumsum[grid](a, b, h0, h, B, T, D, HAS_H0=h0 is not None)
        return h

    @staticmethod
    def backward(ctx, dh):
        a, b, h, h0 = ctx.saved_tensors
        (dh,) = contiguous(dh)
        B, T, D = a.shape
        da, db = torch.empty_like(a), torch.empty_like(a)
        dh0 = None if h0 is None else torch.empty_like(h0)
        if a.numel() == 0:
            return da, db, None if h0 is None else torch.zeros_like(h0), None
        kernel = _backward_sequential if sequential_form(B, T, D, a.device) else _backward_chunked
        kernel[channel_grid(B, D)](a, b, h, dh, da, db, dh0, float(ctx.bound or 1.0), B, T, D,
                                   HAS_H0=h0 is not None, HAS_BOUND=ctx.bound is not None)
        return da, db, dh0, None


@implements("gated_update", dtypes=(torch.float32, torch.bfloat16))
def gated_update(a, b, h0=None, bound=None):
    return _GatedUpdate.apply(a, b, h0, bound)
