"""stack_step, eager PyTorch: the shift-and-mix as three shifted views of the stack."""

import torch

from backends.registry import implements
from backends.torch._common import ALL_DTYPES, upcast


@implements("stack_step", dtypes=ALL_DTYPES)
def stack_step(values, mass, actions, push_value):
    out_dtype = values.dtype
    values, mass, actions, push_value = upcast(values, mass, actions, push_value)
    p, n, q = actions[:, 0, None], actions[:, 1, None], actions[:, 2, None]  # [B, 1] each
    # slot k receives slot k-1 on a push (slot 0 the pushed value) and slot k+1 on a pop
    above_v = torch.cat([push_value[:, None], values[:, :-1]], dim=1)  # [B, K, D]
    below_v = torch.cat([values[:, 1:], values.new_zeros(values[:, :1].shape)], dim=1)  # [B, K, D]
    above_m = torch.cat([torch.ones_like(mass[:, :1]), mass[:, :-1]], dim=1)  # [B, K]
    below_m = torch.cat([mass[:, 1:], torch.zeros_like(mass[:, :1])], dim=1)  # [B, K]
    new_values = p[..., None] * above_v + n[..., None] * values + q[..., None] * below_v
    new_mass = p * above_m + n * mass + q * below_m
    popped_value = q * values[:, 0]  # [B, D]
    popped_mass = q[:, 0] * mass[:, 0]  # [B]
    return tuple(t.to(out_dtype) for t in (new_values, new_mass, popped_value, popped_mass))
