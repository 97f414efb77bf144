"""fastlane (seed 000): a recurrent model whose neurons are micro-MLP units.

Every hidden feature's activation is its own 1-7-7-1 MLP (``ops.micro_mlp``, one
112-float record per unit), ReZero-initialised (alpha_h = alpha_out = 0) so that a new
unit is the identity and learns its nonlinearity from there. The recurrent state is one
scalar per unit, updated by ``ops.gated_update``:

    h_t = g(h_{t-1} + tanh(a_t) * sigmoid(b_t)),   g(z) = c * tanh(z / c) with bound=c

A layer (pre-norm residual, two sublayers, as in a pre-norm transformer block):

    u = rmsnorm(x)                                  # [B, T, d_model]
    a, b = split(micro_mlp(W_ab u))                 # units read the layer's input
    h = gated_update(a, b, h0, bound)               # [B, T, units]
    x = x + W_out h                                 # project down, residual
    x = x + W_down micro_mlp(W_up rmsnorm(x))       # feedforward: its hidden neurons are units

Choices where DESIGN.md 7.3 leaves them open:
- a and b come from one up-projection W_ab (d_model -> 2 * units) through one micro_mlp
  call over 2 * units unit records (the first half gives a, the second b): the same
  parameters as two projections and two unit banks, one kernel call instead of two.
- The state is read out linearly (W_out h); the units' nonlinearity sits before the
  update, the bound after it.
- ``bound`` defaults to 3.0: without a bound the update is a running sum that never
  forgets and grows with T; with it, c * tanh(z / c) saturates, which is the cell's only
  forgetting. ``bound=None`` gives the unbounded (parallel, cumulative sum) update.
- ``units`` defaults to 2 * d_model and ``ffn_units`` to 4 * d_model (0 picks them); the
  units of the feedforward are its activation, so no other nonlinearity is added.
- Unit records are drawn with ``backends.micro_mlp_init_params`` from seeds taken from
  the build's seeded generator, so every bank differs and builds are reproducible.
- The family reads left to right only: ``causal=False`` is refused. ``mask`` is used by
  the pooling heads; the recurrence assumes right padding.

State: the last state of every layer, a list of ``[B, units]`` tensors (None: zeros).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

import backends
from models import register_family
from models.common import RMSNorm, SequenceModel, through_layers
from models.config import ModelConfig, choices, invalid, limits

ACTIVATIONS = ("relu", "sin", "log_relu")


@dataclass(frozen=True)
class FastlaneConfig(ModelConfig):
    family = "fastlane"

    units: int = field(default=0, metadata=limits(0))  # state units per layer; 0: 2 * d_model
    ffn_units: int = field(default=0, metadata=limits(0))  # feedforward hidden units; 0: 4 * d_model
    activation: str = field(default="relu", metadata=choices(*ACTIVATIONS))  # the units' activation
    bound: float | None = 3.0  # c in h = c * tanh(z / c); None: unbounded running sum

    def check(self):
        if self.bound is not None and not self.bound > 0:
            raise invalid(self.family, "bound", "None or a float > 0", self.bound)
        if not self.causal:
            raise invalid(self.family, "causal", "True (a recurrent model that reads left to right)", self.causal)

    @property
    def n_units(self) -> int:
        return self.units or 2 * self.d_model

    @property
    def n_ffn_units(self) -> int:
        return self.ffn_units or 4 * self.d_model


def unit_bank(n: int) -> nn.Parameter:
    """n ReZero unit records [n, 112] (identity at init), seeded from torch's generator."""
    seed = int(torch.randint(0, 2**31 - 1, ()))
    return nn.Parameter(backends.micro_mlp_init_params(n, torch.float32, "cpu", seed))


class FastlaneLayer(nn.Module):
    def __init__(self, cfg: FastlaneConfig, ops):
        super().__init__()
        self.ops = ops
        self.activation, self.bound = cfg.activation, cfg.bound
        d, n, f = cfg.d_model, cfg.n_units, cfg.n_ffn_units
        self.norm1, self.norm2 = RMSNorm(d), RMSNorm(d)
        self.w_ab = nn.Linear(d, 2 * n)  # up to the units: a and b
        self.units_ab = unit_bank(2 * n)  # [2n, 112]
        self.w_out = nn.Linear(n, d, bias=False)  # down from the state
        self.w_up = nn.Linear(d, f)
        self.units_ffn = unit_bank(f)  # [f, 112]
        self.w_down = nn.Linear(f, d, bias=False)

    def forward(self, x, h0):
        """x [B, T, d]; h0 [B, units] or None -> x [B, T, d], h_last [B, units]."""
        ab = self.ops.micro_mlp(self.w_ab(self.norm1(x)), self.units_ab, self.activation)  # [B, T, 2n]
        a, b = ab.chunk(2, dim=-1)  # [B, T, n] each
        h = self.ops.gated_update(a, b, h0, self.bound)  # [B, T, n]
        x = x + self.w_out(h)
        hidden = self.ops.micro_mlp(self.w_up(self.norm2(x)), self.units_ffn, self.activation)  # [B, T, f]
        return x + self.w_down(hidden), h[:, -1]


@register_family
class Fastlane(SequenceModel):
    """Micro-MLP neurons with a bounded gated scalar state per unit (ops micro_mlp, gated_update)."""

    Config = FastlaneConfig
    test_configs = (
        ("relu-bound", dict(d_model=8, n_layers=2, units=4, ffn_units=8)),
        ("sin-unbounded", dict(d_model=8, n_layers=1, units=4, ffn_units=8, activation="sin", bound=None)),
    )

    def __init__(self, config: FastlaneConfig, ops):
        super().__init__(config, ops)
        self.layers = nn.ModuleList(FastlaneLayer(config, ops) for _ in range(config.n_layers))
        self.norm = RMSNorm(config.d_model)

    @classmethod
    def ops_used(cls, config: FastlaneConfig) -> tuple[str, ...]:
        return ("micro_mlp", "gated_update")

    def forward(self, tokens, state=None, mask=None):
        """tokens [B, T] int64; state None or a list of [B, units] per layer."""
        self.check_tokens(tokens, state, mask)
        x, new_states = through_layers(self.layers, self.embed(tokens), state)  # [B, T, d]
        return self.norm(x), new_states
