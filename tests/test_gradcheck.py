"""float64 gradcheck of the torch backend (finite differences vs its autograd), on one
small case per op and option."""

import pytest
import torch

import backends
from backends.check import differentiable_leaves, flatten

CASES = [
    ("micro_mlp", dict(N=4, D=3, activation="sin")),
    ("micro_mlp", dict(N=4, D=2, activation="log_relu")),
    ("gated_update", dict(B=2, T=5, D=3)),
    ("gated_update", dict(B=2, T=5, D=3, bound=1.5)),
    ("logspace_matvec", dict(B=2, M=3, K=4, zeros=False)),
    ("parallel_scan", dict(B=2, T=70, D=2)),
    ("banked_attention", dict(B=1, T=5, H=2, N=3, Dk=3, Dv=2, state=True)),
    ("stack_step", dict(B=2, K=3, D=2)),
    ("nsm_route", dict(B=2, T=4, D=3, S=4, top_k=2, mask=True)),
    ("elman_scan", dict(B=2, T=5, D=3)),
    ("elman_scan", dict(B=2, T=4, D=3, gate=False)),
    # log space from h0 = 0 (a given h0's sign is a leaf with no gradient, which finite
    # differences of sign * exp(log) would see)
    ("elman_scan", dict(B=2, T=5, D=3, h0=False, log_space=True)),
    ("elman_scan", dict(B=1, T=4, D=3, h0=False, gate=False, log_space=True)),
]


@pytest.mark.parametrize("op, case", CASES, ids=[f"{op}-{'-'.join(map(str, c.values()))}" for op, c in CASES])
def test_torch_backend_gradcheck(op, case):
    spec = backends.OPS[op]
    fn = backends.get(op, "torch")
    inputs = spec.make_inputs(case, torch.float64, "cpu", seed=2)
    leaves = differentiable_leaves(spec, inputs)
    names = list(leaves)

    def f(*tensors):
        call = dict(inputs)
        for name, t in zip(names, tensors):
            if "." in name:  # a member of the state tuple
                arg, _ = name.split(".")
                members = list(call[arg])
                members[list(spec.args[arg]).index(name.split(".")[1])] = t
                call[arg] = tuple(members)
            else:
                call[name] = t
        out = flatten(fn(**call))
        return tuple(o for o, n in zip(out, spec.outputs) if n in spec.differentiable_outputs)

    args = tuple(t.detach().requires_grad_(True) for t in leaves.values())
    assert torch.autograd.gradcheck(f, args, eps=1e-6, atol=1e-5, rtol=1e-4)
