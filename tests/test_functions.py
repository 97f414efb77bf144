"""backends.functions.apply: a backend's autograd.Function records its graph only when a
gradient can be asked for; otherwise its forward runs alone (no context, no node)."""

import torch

from backends.functions import apply, records_graph


class _Double(torch.autograd.Function):
    calls = []

    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale  # attributes a forward sets are kept either way
        ctx.save_for_backward(x)
        _Double.calls.append(type(ctx).__name__)
        return x * scale

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * ctx.scale, None


def test_apply_records_a_graph_only_when_a_gradient_can_be_asked():
    x = torch.ones(3, requires_grad=True)
    _Double.calls.clear()
    y = apply(_Double, x, 2.0)
    assert y.grad_fn is not None and records_graph((x,))
    y.sum().backward()
    assert torch.equal(x.grad, torch.full((3,), 2.0))
    with torch.no_grad():
        z = apply(_Double, x, 3.0)
    w = apply(_Double, x.detach(), 4.0)  # grad mode on, nothing requires grad
    assert z.grad_fn is None and w.grad_fn is None
    assert torch.equal(z, torch.full((3,), 3.0)) and torch.equal(w, torch.full((3,), 4.0))
    assert _Double.calls[0] != "_NoGraph" and _Double.calls[1:] == ["_NoGraph", "_NoGraph"]
