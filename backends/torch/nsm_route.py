"""nsm_route, eager PyTorch: batched logits, a stable descending sort for top-k (so
equal logits keep the lower index first), a masked softmax and one batched matmul."""

import torch

from backends.registry import implements
from backends.torch._common import ALL_DTYPES, upcast


@implements("nsm_route", dtypes=ALL_DTYPES)
def nsm_route(x, w_route, b_route=None, mask=None, top_k=None):
    out_dtype = x.dtype
    x, w_route, b_route = upcast(x, w_route, b_route)
    logits = x @ w_route.T  # [B, T, S]
    if b_route is not None:
        logits = logits + b_route
    if top_k is not None and top_k < logits.shape[-1]:
        order = torch.sort(logits.detach(), dim=-1, descending=True, stable=True).indices[..., :top_k]
        keep = torch.zeros_like(logits, dtype=torch.bool).scatter_(-1, order, True)
        weights = torch.softmax(logits.masked_fill(~keep, float("-inf")), dim=-1)
        weights = weights.masked_fill(~keep, 0.0)  # exactly 0 outside the kept logits
    else:
        weights = torch.softmax(logits, dim=-1)
    if mask is not None:
        weights = weights * mask[..., None]  # padding tokens route nowhere
    states = weights.transpose(1, 2) @ x  # [B, S, D]
    return states.to(out_dtype), weights.to(out_dtype)
