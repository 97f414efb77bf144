"""The correctness check allocates poisoned (NaN-filled) buffers for the implementation's
forward AND backward, so a kernel that leaves one element of an output or of a gradient
unwritten fails the check instead of passing on whatever the memory held."""

from __future__ import annotations

import torch

import backends
from backends.check import check_pair
from backends.outputs import poison_outputs

CASE = dict(B=2, T=5, D=3)


class _Scan(torch.autograd.Function):
    """parallel_scan with a hand-written backward that may skip one gradient element."""

    skip_grad = False
    skip_forward = False

    @staticmethod
    def forward(ctx, a, b, h0):
        h = torch.empty_like(a)  # every element written below, unless skip_forward
        state = torch.zeros_like(a[:, 0]) if h0 is None else h0
        for t in range(a.shape[1]):
            state = a[:, t] * state + b[:, t]
            if not (_Scan.skip_forward and t == 2):
                h[:, t] = state
        ctx.save_for_backward(a, h, torch.zeros_like(a[:, 0]) if h0 is None else h0)
        ctx.has_h0 = h0 is not None
        return h

    @staticmethod
    def backward(ctx, dh):
        a, h, h0 = ctx.saved_tensors
        da, db = torch.empty_like(a), torch.empty_like(a)
        g = torch.zeros_like(a[:, 0])
        for t in reversed(range(a.shape[1])):
            g = dh[:, t] + (a[:, t + 1] * g if t + 1 < a.shape[1] else 0)
            db[:, t] = g
            if not (_Scan.skip_grad and t == 0):
                da[:, t] = g * (h[:, t - 1] if t > 0 else h0)
        return da, db, a[:, 0] * g if ctx.has_h0 else None


def scan(a, b, h0=None):
    return _Scan.apply(a, b, h0)


def _check(monkeypatch, skip_forward=False, skip_grad=False):
    monkeypatch.setattr(_Scan, "skip_forward", skip_forward)
    monkeypatch.setattr(_Scan, "skip_grad", skip_grad)
    return check_pair("parallel_scan", "torch", CASE, torch.float32, "cpu", fn=scan)


def test_a_complete_kernel_passes(monkeypatch):
    assert _check(monkeypatch).ok


def test_an_unwritten_forward_element_fails(monkeypatch):
    res = _check(monkeypatch, skip_forward=True)
    assert not res.ok and any("NaN" in p for p in res.problems), res.problems


def test_an_unwritten_gradient_element_fails(monkeypatch):
    res = _check(monkeypatch, skip_grad=True)
    assert not res.ok and any(p.startswith("da:") and "NaN" in p for p in res.problems), res.problems


def test_poisoning_is_scoped_and_restored():
    real = torch.empty
    with poison_outputs():
        assert torch.isnan(torch.empty(3)).all() and torch.isnan(backends.new_output((2,), torch.float32, "cpu")).all()
        assert torch.empty(2, dtype=torch.int64).dtype == torch.int64  # integer buffers are left alone
        with poison_outputs(False):
            assert torch.empty is not real  # an inner "off" leaves the outer patch to its owner
    assert torch.empty is real and torch.empty_like is not None


def test_a_compiled_peer_is_not_poisoned_into_a_compiler_failure():
    """torch.compile traced the NaN-filled empty and inductor refused the graph
    ("n=copy_, n.args[0]=empty"): every torch_compile peer that allocates read as
    incorrect in the gate. Under compilation the allocations stay plain."""
    def double(a):
        h = torch.empty_like(a)  # every element written below
        h.copy_(a * 2)
        return h

    compiled = torch.compile(double, dynamic=False)
    a = torch.arange(6.0)
    with poison_outputs():
        assert torch.equal(compiled(a), a * 2)
