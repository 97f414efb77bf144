"""banked_attention's two decay layouts (DESIGN 2.5): decay_logits [H, N] and per token
[B, T, H, N]. The matrix checks both against the reference (the contract's token_decay
cases); here: a per-token decay that repeats one [H, N] decay is the same op, its
per-token gradient sums to the [H, N] one, a float64 gradcheck of the torch backend,
and a layout that is neither is refused by every backend."""

import pytest
import torch

import backends
from backends.check import flatten
from tests.registry_params import device_for, op_backend_params, require

SPEC = backends.OPS["banked_attention"]
CASE = dict(B=2, T=5, H=2, N=3, Dk=3, Dv=2, state=True)
BACKENDS = [p for p in op_backend_params() if p.values[0] == "banked_attention"]


def _run(fn, inputs, decay):
    decay = decay.detach().requires_grad_(True)
    o, (S, z) = fn(**dict(inputs, decay_logits=decay))
    g = torch.Generator().manual_seed(3)
    loss = sum((t * torch.randn(t.shape, generator=g, dtype=t.dtype).to(t.device)).sum() for t in (o, S, z))
    (grad,) = torch.autograd.grad(loss, decay)
    return flatten((o, S, z)), grad


@pytest.mark.parametrize("op, backend", BACKENDS)
def test_repeated_per_token_decay_is_the_head_decay(request, op, backend):
    fn = require(request, op, backend)
    inputs = SPEC.make_inputs(CASE, torch.float32, device_for(backend), seed=1)
    head = inputs["decay_logits"]  # [H, N]
    out_h, grad_h = _run(fn, inputs, head)
    out_t, grad_t = _run(fn, inputs, head.expand(CASE["B"], CASE["T"], *head.shape).contiguous())
    assert grad_t.shape == (CASE["B"], CASE["T"], *head.shape) and grad_h.shape == head.shape
    for a, b in zip(out_h, out_t):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad_t.sum((0, 1)), grad_h, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("op, backend", BACKENDS)
def test_other_decay_layouts_are_refused(request, op, backend):
    fn = require(request, op, backend)
    inputs = SPEC.make_inputs(CASE, torch.float32, device_for(backend), seed=1)
    head = inputs["decay_logits"]
    B, T = CASE["B"], CASE["T"]
    for bad in (head[None], head.expand(B, T + 1, *head.shape), head.expand(1, B, T, *head.shape)):
        with pytest.raises(ValueError) as info:
            fn(**dict(inputs, decay_logits=bad))
        msg = str(info.value)
        for part in ("banked_attention", backend, "'decay_logits'", "[B, T, H, N]", str(tuple(bad.shape))):
            assert part in msg, f"{part!r} missing from: {msg}"


def test_torch_backend_gradcheck_per_token_decay():
    fn = backends.get("banked_attention", "torch")
    inputs = SPEC.make_inputs(dict(CASE, T=4, token_decay=True), torch.float64, "cpu", seed=2)
    names = ("q", "k", "write_logits", "decay_logits")

    def f(*tensors):
        o, (S, z) = fn(**dict(inputs, **dict(zip(names, tensors))))
        return o, S, z

    args = tuple(inputs[n].detach().requires_grad_(True) for n in names)
    assert torch.autograd.gradcheck(f, args, eps=1e-6, atol=1e-5, rtol=1e-4)
