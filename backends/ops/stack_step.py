"""stack_step: one step of a differentiable superposition stack.

    (values', mass', popped_value, popped_mass) = stack_step(values, mass, actions, push_value)

Shapes: values [B, K, D] (slot 0 is the top; contents weighted by their mass);
mass [B, K] (probability each slot is occupied); actions [B, 3] = (push p, noop n, pop q),
rows summing to 1; push_value [B, D]. With V_K = 0, m_K = 0:
    values'_0 = p push_value + n V_0 + q V_1;   values'_k = p V_{k-1} + n V_k + q V_{k+1}
    mass'_0   = p + n m_0 + q m_1;              mass'_k   = p m_{k-1} + n m_k + q m_{k+1}
    popped_value = q V_0;   popped_mass = q m_0
What a push moves past slot K-1 is dropped. Differentiable: all four inputs.
"""

from __future__ import annotations

import torch

from backends.ops._common import by_mode, generator, itemsize, no_options, place, randn, tolerances, uniform
from backends.registry import OpSpec, TensorArg, register_op


def stack_step(values, mass, actions, push_value):
    """The float64 reference: slot by slot, as the equations read."""
    B, K, D = values.shape
    p, n, q = actions[:, 0], actions[:, 1], actions[:, 2]  # [B] each
    zero_v, zero_m = values.new_zeros(B, D), mass.new_zeros(B)
    new_v, new_m = [], []
    for k in range(K):
        above_v = push_value if k == 0 else values[:, k - 1]
        above_m = torch.ones_like(p) if k == 0 else mass[:, k - 1]
        below_v = values[:, k + 1] if k + 1 < K else zero_v
        below_m = mass[:, k + 1] if k + 1 < K else zero_m
        new_v.append(p[:, None] * above_v + n[:, None] * values[:, k] + q[:, None] * below_v)
        new_m.append(p * above_m + n * mass[:, k] + q * below_m)
    return torch.stack(new_v, dim=1), torch.stack(new_m, dim=1), q[:, None] * values[:, 0], q * mass[:, 0]


def make_inputs(case: dict, dtype=torch.float32, device="cpu", seed: int = 0) -> dict:
    """A stack that fills from the top (mass decreasing with depth) and actions drawn
    from a softmax, so they are valid probabilities."""
    g = generator(seed)
    B, K, D = case["B"], case["K"], case["D"]
    mass = torch.sort(uniform(g, 0.0, 1.0, B, K), dim=1, descending=True).values
    values = mass[..., None] * randn(g, B, K, D)
    actions = torch.softmax(1.5 * randn(g, B, 3), dim=-1)
    push_value = randn(g, B, D)
    return place({"values": values, "mass": mass, "actions": actions, "push_value": push_value}, dtype, device)


def flops(case: dict, mode: str = "forward") -> float:
    # per slot element: 3 multiplies, 2 adds
    B, K, D = case["B"], case["K"], case["D"]
    f = 5.0 * B * K * (D + 1)
    return by_mode(mode, f, 2.0 * f)


def bytes_moved(case: dict, dtype=torch.float32, mode: str = "forward") -> float:
    # forward reads values, mass, actions, push_value and writes the four outputs;
    # backward reads the four output gradients, values, mass, actions, writes four gradients
    B, K, D, s = case["B"], case["K"], case["D"], itemsize(dtype)
    ins = B * K * D + B * K + 3 * B + B * D
    outs = B * K * D + B * K + B * D + B
    return by_mode(mode, (ins + outs) * s, (outs + ins + ins) * s)


SPEC = register_op(OpSpec(
    name="stack_step",
    reference=stack_step,
    args={"values": TensorArg("B K D"), "mass": TensorArg("B K"), "actions": TensorArg("B 3"),
          "push_value": TensorArg("B D")},
    check_options=no_options,
    make_inputs=make_inputs,
    outputs=("values", "mass", "popped_value", "popped_mass"),
    differentiable_inputs=("values", "mass", "actions", "push_value"),
    differentiable_outputs=("values", "mass", "popped_value", "popped_mass"),
    test_cases=(
        dict(B=1, K=1, D=1),
        dict(B=2, K=5, D=3),
        dict(B=4, K=16, D=33),
        dict(B=3, K=7, D=100),
    ),
    case_space={"B": range(1, 5), "K": range(1, 20), "D": range(1, 40)},
    tolerances=tolerances(f32=(1e-6, 1e-6), f32_grad=(1e-6, 1e-6), bf16=(1e-2, 1e-2), bf16_grad=(2e-2, 2e-2)),
    flops=flops,
    bytes=bytes_moved,
    doc=__doc__,
))
