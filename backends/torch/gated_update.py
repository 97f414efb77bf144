"""gated_update, eager PyTorch.

Without a bound the recurrence is a cumulative sum of the gated inputs. With a bound the
forward is inherently sequential (one fused step per t, the states stacked at the end);
its backward is linear, q_t = c_t (dh_t + q_{t+1}) with c_t = 1 - (h_t/bound)^2, so it
runs as a reversed chunked parallel_scan instead of T autograd nodes.

Under torch.compile a traced token loop is unrolled, one graph copy of the step per
token. Up to ``TRACE_MAX_T`` tokens it is traced (the op suite's quick case, T=64,
compiles in seconds and runs as fused code); longer, the loop runs eagerly inside the
compiled code (``torch.compiler.disable``), so a compiled model's graph and compile time
do not grow with T: fastlane's whole-model compile with the loop unrolled took 174 s at
B=4, T=1,024 on the 2-core CPU, 10-16 s without, and ran 0.7-0.8x eager either way.
The states are stacked rather than written into a preallocated output: eager they cost
the same, but traced, the in-place writes compiled to 1.01x eager (forward, B=8, T=64,
D=512, 2-core CPU) and the stacked states to 1.9x.
"""

import torch

from backends.registry import implements
from backends.torch._common import ALL_DTYPES, upcast
from backends.torch.parallel_scan import parallel_scan as scan

TRACE_MAX_T = 64  # longest token loop torch.compile traces (unrolls); longer runs eagerly


def _bounded_loop(u, h0, bound: float):
    """u [B, T, D] gated inputs, h0 [B, D] -> h [B, T, D]: one fused step per token."""
    state, states = h0, []
    for t in range(u.shape[1]):
        state = torch.tanh((state + u[:, t]) / bound) * bound
        states.append(state)
    return torch.stack(states, dim=1)


_eager_loop = torch.compiler.disable(_bounded_loop, reason=f"a token loop over more than {TRACE_MAX_T} tokens "
                                     "unrolls when traced (issue 20)")


class _Bounded(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, h0, bound):
        h = (_bounded_loop if u.shape[1] <= TRACE_MAX_T else _eager_loop)(u, h0, bound)  # [B, T, D]
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
