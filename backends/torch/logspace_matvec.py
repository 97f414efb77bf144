"""logspace_matvec, eager PyTorch: the stable form over [B, M, K] term blocks, in
slices of the batch so the temporary stays near 64 MB.

Backward (through y_log) in closed form, not by autograd through the logarithms:
    d y_log_bi / d w_ij     = x_sign_bj y_sign_bi exp(x_log_bj - y_log_bi)   (= x_bj / y_bi)
    d y_log_bi / d x_log_bj = w_ij x_sign_bj y_sign_bi exp(x_log_bj - y_log_bi)
Autograd through log|w| and log|P - N| gives 0 * inf = NaN at w_ij = 0 (where the true
gradient x_bj / y_bi is finite) and at an exact zero y_bi. Where y is exactly 0
(y_log = -inf) the gradient is taken as 0, as in every backend (the contract).
"""

import torch

from backends.registry import implements
from backends.torch._common import ALL_DTYPES, upcast

BLOCK_ELEMENTS = 1 << 24  # terms per slice: 64 MB of float32


def _rows(logw, signw, x_log, x_sign):
    t = logw[None] + x_log[:, None, :]  # [b, M, K]
    s = signw[None] * x_sign[:, None, :]  # [b, M, K]
    m = torch.amax(t, dim=-1, keepdim=True)  # [b, M, 1]
    m = torch.where(torch.isneginf(m), torch.zeros_like(m), m)  # all terms zero: y = 0
    e = torch.exp(t - m)
    pos = torch.where(s > 0, e, 0.0).sum(-1)  # [b, M]
    neg = torch.where(s < 0, e, 0.0).sum(-1)
    y_log = m[..., 0] + torch.log(torch.abs(pos - neg))  # -inf where pos == neg
    y_sign = torch.where(pos >= neg, 1.0, -1.0).to(y_log.dtype)
    return y_log, y_sign


def _slices(B: int, terms_per_row: int):
    step = max(1, BLOCK_ELEMENTS // max(1, terms_per_row))
    return [slice(i, i + step) for i in range(0, B, step)]


class _LogspaceMatvec(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w, x_log, x_sign):
        logw = torch.log(torch.abs(w))  # [M, K]
        signw = torch.where(w < 0, -1.0, 1.0).to(w.dtype)
        parts = [_rows(logw, signw, x_log[s], x_sign[s]) for s in _slices(x_log.shape[0], w.numel())]
        y_log = torch.cat([p[0] for p in parts])
        y_sign = torch.cat([p[1] for p in parts])
        ctx.save_for_backward(w, x_log, x_sign, y_log, y_sign)
        ctx.mark_non_differentiable(y_sign)
        return y_log, y_sign

    @staticmethod
    def backward(ctx, g, _g_sign):
        w, x_log, x_sign, y_log, y_sign = ctx.saved_tensors
        zero = torch.isneginf(y_log)  # [B, M] exact zeros pass no gradient
        gs = torch.where(zero, 0.0, g * y_sign)  # [B, M]
        y_safe = torch.where(zero, torch.inf, y_log)  # exp(x_log - y_log) = 0 there, not inf
        dw = torch.zeros_like(w)
        dx_log = torch.empty_like(x_log)
        for s in _slices(x_log.shape[0], w.numel()):
            # [b, M, K]: g_bi dy_log_bi / dw_ij; x_log = -inf (x = 0) gives 0
            c = gs[s, :, None] * x_sign[s, None, :] * torch.exp(x_log[s, None, :] - y_safe[s, :, None])
            dw += c.sum(0)
            # w_ij = 0 passes no gradient, even where exp(x_log - y_log) is inf in float32
            dx_log[s] = torch.where(w[None] == 0, 0.0, c * w[None]).sum(1)
        return dw, dx_log, None


@implements("logspace_matvec", dtypes=ALL_DTYPES)
def logspace_matvec(w, x_log, x_sign):
    out_dtype = w.dtype
    w, x_log, x_sign = upcast(w, x_log, x_sign)
    y_log, y_sign = _LogspaceMatvec.apply(w, x_log, x_sign)
    return y_log.to(out_dtype), y_sign.to(out_dtype)
