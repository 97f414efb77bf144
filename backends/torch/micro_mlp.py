"""micro_mlp, eager PyTorch: all units at once as batched 7x7 matmuls over the columns."""

import torch

from backends.ops.micro_mlp import act_fn, unpack
from backends.registry import implements
from backends.torch._common import ALL_DTYPES, upcast


@implements("micro_mlp", dtypes=ALL_DTYPES)
def micro_mlp(x, params, activation="relu"):
    out_dtype = x.dtype
    act = act_fn(activation)
    x, params = upcast(x, params)
    p = unpack(params)  # w1 [D, 7], W2 [D, 7, 7], b3 [D], ...
    u = x.reshape(-1, x.shape[-1])  # [N, D]
    h1 = act(u[..., None] * p["w1"] + p["b1"])  # [N, D, 7]
    z2 = torch.einsum("ndi,dji->ndj", h1, p["W2"]) + p["b2"]  # [N, D, 7]
    h2 = h1 + p["alpha_h"][:, None] * act(z2)
    y = u + p["alpha_out"] * ((h2 * p["w3"]).sum(-1) + p["b3"])  # [N, D]
    return y.reshape(x.shape).to(out_dtype)
