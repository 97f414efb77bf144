"""The external memory of the NSM's ``memory`` variant: a Neural Turing Machine memory
(Graves et al. 2014) of M rows of width D, with one read head and one write head per state.

Addressing (section 3.3 of the paper), for every head from its parameters and its previous
weighting ``w_prev`` [M]:

    content:       w_c = softmax_M(beta cos(key, M_m))             beta = softplus(.)
    interpolation: w_g = g w_c + (1 - g) w_prev                    g = sigmoid(.)
    shift:         w_s(i) = sum_j w_g(i - j) s(j), j in {-1, 0, +1} s = softmax(.) (circular)
    sharpening:    w = w_s^gamma / sum w_s^gamma                    gamma = 1 + softplus(.)

Reading: ``r = w M``; writing with erase ``e`` and add ``a`` vectors of all heads at once,
``M <- M * prod_s (1 - w_s e_s^T) + sum_s w_s a_s^T``. The memory and the heads' previous
weightings are carried chunk to chunk; head s starts on row ``s mod M`` (a one-hot initial
weighting, so that the location path has somewhere to start from); the initial memory is
learned.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

HEAD_SCALARS = 6  # beta, g, gamma and the three shift logits


class NTMemory(nn.Module):
    def __init__(self, d: int, n_heads: int, slots: int):
        super().__init__()
        self.d = d
        self.mem0 = nn.Parameter(0.1 * torch.randn(slots, d))  # [M, D]
        self.read_head = nn.Linear(d, d + HEAD_SCALARS)  # key, beta, g, gamma, shift
        self.write_head = nn.Linear(d, 3 * d + HEAD_SCALARS)  # key, erase, add, beta, g, gamma, shift
        self.mem_in = nn.Linear(d, d, bias=False)  # the read vector into the state's input
        first = torch.zeros(n_heads, slots)
        first[torch.arange(n_heads), torch.arange(n_heads) % slots] = 1.0
        self.register_buffer("w_first", first, persistent=False)  # [S, M]

    def initial(self, B: int) -> dict:
        w = self.w_first.expand(B, -1, -1)
        return {"mem": self.mem0.repeat(B, 1, 1), "w_read": w, "w_write": w}  # repeat: see NSMLayer.initial

    def address(self, mem, key, scalars, w_prev):
        """mem [B, M, D]; key [B, S, D]; scalars [B, S, 6]; w_prev [B, S, M] -> w [B, S, M]."""
        beta, g = F.softplus(scalars[..., 0:1]), torch.sigmoid(scalars[..., 1:2])  # [B, S, 1]
        gamma = 1 + F.softplus(scalars[..., 2:3])
        shift = torch.softmax(scalars[..., 3:6], dim=-1)  # weights of the shifts -1, 0, +1
        cos = F.normalize(key, dim=-1) @ F.normalize(mem, dim=-1).transpose(1, 2)  # [B, S, M]
        w = g * torch.softmax(beta * cos, dim=-1) + (1 - g) * w_prev
        w = shift[..., 0:1] * w.roll(-1, -1) + shift[..., 1:2] * w + shift[..., 2:3] * w.roll(1, -1)
        # w^gamma normalised, as a softmax of gamma log w; the clamp keeps log finite where an
        # entry underflowed to 0 (its gradient is then 0, as the entry's weight)
        return torch.softmax(gamma * w.clamp_min(torch.finfo(w.dtype).tiny).log(), dim=-1)

    def read(self, h, memory: dict):
        """The states read with their keys: h [B, S, D] -> (what enters the states' input
        [B, S, D], the read weights [B, S, M])."""
        p = self.read_head(h)
        w = self.address(memory["mem"], p[..., :self.d], p[..., self.d:], memory["w_read"])
        return self.mem_in(w @ memory["mem"]), w

    def write(self, h, memory: dict):
        """Every state writes with erase and add: h [B, S, D] -> (mem [B, M, D], write weights [B, S, M])."""
        D = self.d
        p = self.write_head(h)  # [B, S, 3D + 6]
        w = self.address(memory["mem"], p[..., :D], p[..., 3 * D:], memory["w_write"])
        erase, add = torch.sigmoid(p[..., D:2 * D]), torch.tanh(p[..., 2 * D:3 * D])  # [B, S, D]
        keep = (1 - w[..., None] * erase[:, :, None, :]).prod(dim=1)  # [B, M, D]
        return memory["mem"] * keep + w.transpose(1, 2) @ add, w
