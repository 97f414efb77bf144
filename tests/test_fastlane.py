"""fastlane's own invariants (DESIGN.md 7.3): units are the identity at init, the bound
holds over a long sequence, activations are checked, the parameter set is the design's."""

from __future__ import annotations

import pytest
import torch

import backends
import models
from models.fastlane import ACTIVATIONS

TORCH = backends.resolve("torch", "cpu")


class Spy:
    """An OpTable stand-in that records every op call's output (by op name)."""

    def __init__(self, ops):
        self._ops, self.mix, self.device = ops, ops.mix, ops.device
        self.outputs: dict[str, list] = {}

    def __getattr__(self, op):
        impl = getattr(self._ops, op)

        def call(*args, **kwargs):
            out = impl(*args, **kwargs)
            self.outputs.setdefault(op, []).append(out)
            return out

        call.grad = impl.grad
        return call


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_units_are_the_identity_at_init(activation):
    cfg = models.config("fastlane", d_model=8, n_layers=2, units=6, ffn_units=10, activation=activation)
    model = models.build(cfg, TORCH)
    for layer in model.layers:
        for bank in (layer.units_ab, layer.units_ffn):
            assert bank.shape[1] == 112 and torch.all(bank[:, 78:80] == 0), "ReZero alphas must start at 0"
            u = 3 * torch.randn(2, 5, bank.shape[0])  # [B, T, units]
            assert torch.equal(TORCH.micro_mlp(u, bank, activation), u)
    banks = [layer.units_ab for layer in model.layers] + [layer.units_ffn for layer in model.layers]
    assert len({b[:, :7].sum().item() for b in banks}) == len(banks), "every unit bank draws its own weights"


def _scaled_model(bound, T_scale=8.0):
    cfg = models.config("fastlane", d_model=8, n_layers=1, units=6, ffn_units=8, bound=bound)
    spy = Spy(TORCH)
    model = models.build(cfg, spy)
    with torch.no_grad():
        model.layers[0].w_ab.weight.mul_(T_scale)  # saturate tanh(a) * sigmoid(b): steps near +-1
        model.layers[0].w_ab.bias.fill_(2.0)  # same sign at every step: the state drifts one way
    return model, spy


def test_bound_holds_over_a_long_sequence():
    toks = torch.randint(0, 256, (2, 3000), generator=torch.Generator().manual_seed(0))
    model, spy = _scaled_model(bound=0.5)
    with torch.no_grad():
        hidden, state = model(toks)
    h = spy.outputs["gated_update"][0]  # [B, T, units]: every state
    assert h.shape == (2, 3000, 6) and torch.isfinite(hidden).all()
    assert h.abs().max() <= 0.5 and h.abs().max() > 0.45, "the state must reach, never pass, the bound"
    assert torch.equal(state[0], h[:, -1])
    model, spy = _scaled_model(bound=None)
    with torch.no_grad():
        model(toks)
    assert spy.outputs["gated_update"][0].abs().max() > 100, "unbounded, the same inputs accumulate far past it"


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_activations_accepted(activation):
    cfg = models.config("fastlane", d_model=8, n_layers=1, units=4, ffn_units=4, activation=activation)
    hidden, _ = models.build(cfg, TORCH)(torch.randint(0, 256, (1, 4)))
    assert hidden.shape == (1, 4, 8) and torch.isfinite(hidden).all()


@pytest.mark.parametrize("field, value, expected", [
    ("activation", "tanh", "one of 'relu', 'sin', 'log_relu'"),
    ("activation", "gelu", "one of 'relu', 'sin', 'log_relu'"),
    ("bound", 0.0, "None or a float > 0"),
    ("bound", -1.0, "None or a float > 0"),
    ("bound", "big", "a float or None"),
    ("units", -1, ">= 0"),
    ("causal", False, "True"),
])
def test_bad_values_rejected(field, value, expected):
    with pytest.raises(ValueError, match=rf"fastlane config: field '{field}' expected {expected}.*got {value!r}"):
        models.config("fastlane", **{field: value})


def test_parameter_set():
    d, n, f = 8, 6, 10
    cfg = models.config("fastlane", d_model=d, n_layers=2, units=n, ffn_units=f, vocab_size=32)
    model = models.build(cfg, TORCH)
    per_layer = {"norm1.weight": (d,), "norm2.weight": (d,), "w_ab.weight": (2 * n, d), "w_ab.bias": (2 * n,),
                 "units_ab": (2 * n, 112), "w_out.weight": (d, n), "w_up.weight": (f, d), "w_up.bias": (f,),
                 "units_ffn": (f, 112), "w_down.weight": (d, f)}
    want = {"embed.weight": (32, d), "norm.weight": (d,)}
    want |= {f"layers.{i}.{k}": s for i in range(2) for k, s in per_layer.items()}
    assert {k: tuple(p.shape) for k, p in model.named_parameters()} == want
    assert models.FAMILIES["fastlane"].ops_used(cfg) == ("micro_mlp", "gated_update")
    default = models.config("fastlane", d_model=16)
    assert (default.n_units, default.n_ffn_units, default.bound) == (32, 64, 3.0)


def test_state_is_the_last_state_per_layer():
    cfg = models.config("fastlane", d_model=8, n_layers=2, units=6, ffn_units=8)
    spy = Spy(TORCH)
    model = models.build(cfg, spy)
    _, state = model(torch.randint(0, 256, (3, 7)))
    assert [tuple(s.shape) for s in state] == [(3, 6), (3, 6)]
    for s, h in zip(state, spy.outputs["gated_update"]):
        assert torch.equal(s, h[:, -1])
