"""parallel_scan, eager PyTorch: a chunked scan.

Within chunks of L steps a Hillis-Steele doubling scan composes the (a, b) pairs in
log2(L) vectorised passes; a short loop over the T/L chunks then carries the state, and
one pass applies it. No division by cumulative products, so decays near 0 stay exact.
Autograd gives the backward.
"""

import torch

from backends.registry import implements
from backends.torch._common import ALL_DTYPES, upcast

CHUNK = 64  # steps per chunk: log2(64) = 6 doubling passes, T/64 carry steps


def _chunk_scan(a, b):
    """Inclusive scan of h_t = a_t h_{t-1} + b_t with h_{-1} = 0 along dim 2.
    a, b: [B, C, L, D]. Returns (A, H): A_t = prod_{s<=t} a_s, H_t = the state."""
    L = a.shape[2]
    step = 1
    while step < L:
        a_prev, b_prev = a[:, :, :-step], b[:, :, :-step]
        b = torch.cat([b[:, :, :step], b[:, :, step:] + a[:, :, step:] * b_prev], dim=2)
        a = torch.cat([a[:, :, :step], a[:, :, step:] * a_prev], dim=2)
        step *= 2
    return a, b


@implements("parallel_scan", dtypes=ALL_DTYPES)
def parallel_scan(a, b, h0=None):
    out_dtype = a.dtype
    a, b, h0 = upcast(a, b, h0)  # [B, T, D], [B, T, D], [B, D]
    B, T, D = a.shape
    L = min(CHUNK, T)
    C = -(-T // L)
    pad = C * L - T
    if pad:  # identity steps (a = 1, b = 0) at the end
        a = torch.cat([a, a.new_ones(B, pad, D)], dim=1)
        b = torch.cat([b, b.new_zeros(B, pad, D)], dim=1)
    A, H = _chunk_scan(a.view(B, C, L, D), b.view(B, C, L, D))  # [B, C, L, D]
    carry = h0 if h0 is not None else a.new_zeros(B, D)  # [B, D]
    carries = []  # the state entering each chunk
    for c in range(C):
        carries.append(carry)
        carry = A[:, c, -1] * carry + H[:, c, -1]
    h = H + A * torch.stack(carries, dim=1)[:, :, None, :]  # [B, C, L, D]
    return h.reshape(B, C * L, D)[:, :T].to(out_dtype)
