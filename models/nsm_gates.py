"""The propagators of the neural state machine: how a state vector takes in its routed input.

Every gate is affine in the routed input ``in`` and in the previous state ``prev`` before
its nonlinearities, so its two maps are applied where they are cheapest (models/nsm.py):
``W_in`` once per token (then carried through the routing sums, which are linear) or once
per chunk on the routed sums; ``W_h`` once per chunk on the committed states. What is left
per token and state is elementwise: ``step`` takes the pre-activations, never a state.

    gru:   r = sigmoid(a_r + p_r), z = sigmoid(a_z + p_z), new = prev + z (tanh(a_c + r p_c) - prev)
    lstm:  cell' = sigmoid(a_f + p_f) cell + sigmoid(a_i + p_i) tanh(a_g + p_g),
           new = sigmoid(a_o + p_o) tanh(cell')                    (a cell and a hidden per state)
    seed:  f = sigmoid(W_f [prev, in]), u = sigmoid(W_u [prev, in]),
           new = f prev + u tanh(W_c [prev, in])                    (the source's, independent gates)

with ``a = W_in in + b`` and ``p = W_h prev``. Options: ``residual`` adds ``prev`` around the
propagator (``new += prev``), ``norm`` LayerNorms the result (the source's state
normalisation). Finally the routing mass m a state received gates the whole update,
``state' = prev + min(m, 1) (new - prev)`` (and likewise the LSTM cell), so that a state no
token was routed to (top-k, padding) keeps its value; for the GRU this is the update gate
scaled by the mass.
"""

from __future__ import annotations

import torch
from torch import nn

GATE_WIDTH = {"gru": 3, "lstm": 4, "seed": 3}  # pre-activations per state feature


class StateGate(nn.Module):
    """One gate shared by all S states of a layer."""

    def __init__(self, kind: str, d: int, norm: bool, residual: bool):
        super().__init__()
        if kind not in GATE_WIDTH:
            raise ValueError(f"nsm gate: argument 'kind' expected one of {', '.join(GATE_WIDTH)}, got {kind!r}")
        self.kind = kind
        self.width = GATE_WIDTH[kind] * d
        self.w_in = nn.Linear(d, self.width)  # W_in (and the bias b) of the routed input
        self.w_h = nn.Linear(d, self.width, bias=False)  # W_h of the previous state
        self.norm = nn.LayerNorm(d) if norm else None
        self.residual = residual

    @property
    def has_cell(self) -> bool:
        return self.kind == "lstm"

    def project_input(self, x):  # [..., D] -> [..., G*D], W_in x without the bias (linear, summable)
        return nn.functional.linear(x, self.w_in.weight)

    def project_state(self, h):  # [..., S, D] -> [..., S, G*D]
        return self.w_h(h)

    def step(self, a, p, prev, cell, mass):
        """a: W_in in + b [..., S, G*D]; p: W_h prev [..., S, G*D] (broadcast over tokens);
        prev, cell: [..., S, D] (cell None but for lstm); mass [..., S].
        Returns the new states and cells (None but for lstm), [..., S, D]."""
        new_cell = None
        m = mass.clamp(max=1.0)[..., None]  # [..., S, 1]
        if self.kind == "gru":
            D = prev.shape[-1]
            r, z = torch.sigmoid(a[..., :2 * D] + p[..., :2 * D]).chunk(2, dim=-1)  # both gates in one op
            step = torch.tanh(a[..., 2 * D:] + r * p[..., 2 * D:]) - prev
            if not self.residual and self.norm is None:  # the mass scales the update gate: 3 ops fewer
                return prev + (z * m) * step, None
            new = prev + z * step
        elif self.kind == "lstm":
            i, f, o, g = (a + p).chunk(4, dim=-1)
            new_cell = torch.sigmoid(f) * cell + torch.sigmoid(i) * torch.tanh(g)
            new = torch.sigmoid(o) * torch.tanh(new_cell)
        else:
            f, u, c = (a + p).chunk(3, dim=-1)
            new = torch.sigmoid(f) * prev + torch.sigmoid(u) * torch.tanh(c)
        if self.residual:
            new = prev + new
        if self.norm is not None:
            new = self.norm(new)
        out = prev + m * (new - prev)
        return out, (None if new_cell is None else cell + m * (new_cell - cell))
