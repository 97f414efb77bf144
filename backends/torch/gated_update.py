"""gated_update, eager PyTorch.

Without a bound the recurrence is a cumulative sum of the gated inputs. With a bound the
forward is inherently sequential (one fused step per t, written into a preallocated
output); its backward is linear, q_t = c_t (dh_t + q_{t+1}) with c_t = 1 - (h_t/bound)^2,
so it runs as a reversed chunked parallel_scan instead of T autograd nodes.

Under torch.compile the forward's token loop stays eager (``torch.compiler.disable``):
traced, dynamo would unroll it into T steps per call, a graph and a compile time
growing with T (fastlane's whole-model compile took 174 s at B=4, T=1,024 on the
2-core CPU, and its step ran 0.78x eager), so the model compiles around it.
"""

import torch

from backends.registry import implements
from backends.torch._common import ALL_DTYPES, upcast
from backends.torch.parallel_scan import parallel_scan as scan


@torch.compiler.disable(reason="a Python loop over the T tokens: traced, it unrolls (issue 20)")
def _bounded_forward(u, h0, bound: float):
    """u [B, T, D] gated inputs, h0 [B, D] -> h [B, T, D]: one fused step per token."""
    h = torch.empty_like(u)
    state = h0
    for t in range(u.shape[1]):
        state = torch.tanh((state + u[:, t]) / bound) * bound
        h[:, t] = state
    return h


class _Bounded(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, h0, bound):
        h = _bounded_forward(u, h0, bound)
        ctx.save_for_backward(h)
        ctx.bound = bound
        return h

    @staticmethod
    def backward(ctx, dh):
        (h,) = ctx.saved_tensors
        c = 1.0 - (h / ctx.bound) ** 2  # [B, T, D] = dh_t / dz_t
        # q_t = dL/du_t = c_t (dh_t + q_{t+1}): a reverse linear scan
        q = scan(c.flip(1), (c * dh).flip(1)).flip(1)
        return q, q[:, 0], None


@implements("gated_update", dtypes=ALL_DTYPES)
def gated_update(a, b, h0=None, bound=None):
    out_dtype = a.dtype
    a, b, h0 = upcast(a, b, h0)
    u = torch.tanh(a) * torch.sigmoid(b)  # [B, T, D]
    if h0 is None:
        h0 = u.new_zeros(u.shape[0], u.shape[2])
    if bound is None:
        h = h0[:, None, :] + torch.cumsum(u, dim=1)
    else:
        h = _Bounded.apply(u, h0, float(bound))
    return h.to(out_dtype)
