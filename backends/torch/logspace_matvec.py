"""logspace_matvec, eager PyTorch: the stable form over [B, M, K] term blocks, in
slices of the batch so the temporary stays near 64 MB."""

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
    y_log = m[..., 0] + torch.log(torch.abs(pos - neg))
    y_sign = torch.where(pos >= neg, 1.0, -1.0).to(y_log.dtype)
    return y_log, y_sign

@implements("logspace_matvec", dtypes=ALL_DTYPES)
def logspace_matvec(w, x_log, x_sign):
    out_dtype = w.dtype
    w, x_log, x_sign = upcast(w, x_log, x_sign)
    logw = torch.log(torch.abs(w))  # [M, K]
    signw = torch.where(w < 0, -1.0, 1.0).to(w.dtype)
    B = x_log.shape[0]
    step = max(1, BLOCK_ELEMENTS // max(1, w.numel()))
    parts = [_rows(logw, signw, x_log[i:i + step], x_sign[i:i + step]) for i in range(0, B, step)]
    y_log = torch.cat([p[0] for p in parts])
    y_sign = torch.cat([p[1] for p in parts])
    return y_log.to(out_dtype), y_sign.to(out_dtype)
