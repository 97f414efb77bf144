"""elman_scan, eager PyTorch: the step loop, autograd through it (the readable path).

Linear space: one F.linear and one tanh per step, per-step views by unbind (the backward
of T selects u[:, t] would zero-fill T gradients of [B, T, D]). Log space: R h_{t-1} by
this backend's logspace_matvec (the stable form with its closed-form backward, exact
zeros passing no gradient), then the contract's signed log-sum and log|tanh|. bf16
inputs run in float32 (the contract: bf16 loads, float32 arithmetic and state).
"""

import torch
import torch.nn.functional as F

from backends.ops.elman_scan import log_tanh_abs, signed_logaddexp, to_log
from backends.registry import implements
from backends.torch._common import ALL_DTYPES, upcast
from backends.torch.logspace_matvec import logspace_matvec


def _linear(u, R, gate, h):
    # u, gate [B, T, D]; h None (zeros) or [B, D] -> [B, T, D]
    us = u.unbind(1)
    ds = torch.sigmoid(gate).unbind(1) if gate is not None else None
    hs = []
    for t, u_t in enumerate(us):
        c = torch.tanh(u_t if h is None else u_t + F.linear(h, R))  # [B, D]
        if ds is None:
            h = c
        else:
            h = ds[t] * c if h is None else h + ds[t] * (c - h)
        hs.append(h)
    return torch.stack(hs, 1)


def _log(u, R, gate, state):
    # u, gate [B, T, D]; state None (h = 0) or (h_log, h_sign) [B, D] -> two [B, T, D]
    u_log, u_sign = (x.unbind(1) for x in to_log(u))
    if gate is not None:
        keep, take = F.logsigmoid(-gate).unbind(1), F.logsigmoid(gate).unbind(1)  # log(1 - d_t), log d_t
    logs, signs = [], []
    for t in range(u.shape[1]):
        if state is None:  # R 0 = 0, and (1 - d) 0 = 0: the first step is exact without them
            z_log, z_sign = u_log[t], u_sign[t]
            a = log_tanh_abs(z_log)
            state = (a, z_sign) if gate is None else (take[t] + a, z_sign)
        else:
            h_log, h_sign = state
            r_log, r_sign = logspace_matvec(R, h_log, h_sign)  # R h_{t-1}, [B, D]
            z_log, z_sign = signed_logaddexp(u_log[t], u_sign[t], r_log, r_sign)
            a = log_tanh_abs(z_log)
            state = (a, z_sign) if gate is None else \
                signed_logaddexp(keep[t] + h_log, h_sign, take[t] + a, z_sign)
        logs.append(state[0])
        signs.append(state[1])
    return torch.stack(logs, 1), torch.stack(signs, 1)


@implements("elman_scan", dtypes=ALL_DTYPES)
def elman_scan(u, R, gate=None, h0=None, log_space=False):
    out_dtype = u.dtype
    u, R, gate = upcast(u, R, gate)
    if not log_space:
        (h0,) = upcast(h0)
        return _linear(u, R, gate, h0).to(out_dtype)
    state = None if h0 is None else upcast(*h0)
    h_log, h_sign = _log(u, R, gate, state)
    return h_log.to(out_dtype), h_sign.to(out_dtype)
