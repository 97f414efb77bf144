"""The state-to-token projectors of the neural state machine: how a token reads the S states.

    direct:     a = softmax_S(w_o . h_s + b_o)                 the source's: from the states alone
                read = sum_s a_s h_s
    attention:  a = softmax_S((W_q u) . (W_k h_s) / sqrt(D))   a query from the token u
                read = W_v sum_s a_s h_s
    hybrid:     g = sigmoid(W_g u + b_g) per feature           a learned gate from the token
                read = g * attention + (1 - g) * direct

and the token's residual stream gets ``W_out read``. The key and value maps are affine in
the states, so they are carried through the sums by associativity: the token's query is
turned into a state-space vector once, ``W_k^T W_q u`` ([D], a D x D map per token), and the
value map is applied once to the mixed state; per token and state only dot products and
weighted sums remain (``O(S D)``).

The states come per chunk ``[B, n, S, D]`` (every token of a chunk reads the same states:
the encoder's final states) or per token ``[B, n, L, S, D]`` (the causal path: each token
its own provisional states); ``u`` is ``[B, n, L, D]``, the read likewise.
"""

from __future__ import annotations

import math

import torch
from torch import nn

PROJECTORS = ("direct", "attention", "hybrid")


def _dot(h, q):
    """Scores of each token against each state: h [B, n, (L,) S, D], q [B, n, L, D] -> [B, n, L, S]."""
    if h.dim() == 5:
        return (h @ q[..., None]).squeeze(-1)
    return q @ h.transpose(-1, -2)


def _mix(a, h):
    """The weighted sum of the states: a [B, n, L, S], h [B, n, (L,) S, D] -> [B, n, L, D]."""
    if h.dim() == 5:
        return (a[..., None, :] @ h).squeeze(-2)
    return a @ h


def _causal(scores, values):
    """The causal within-chunk sum: scores [B, n, L, L] between a chunk's tokens, kept where
    t' <= t, applied to values [B, n, L, X] -> [B, n, L, X]."""
    L = scores.shape[-1]
    keep = torch.ones(L, L, dtype=torch.bool, device=scores.device).tril()
    return scores.masked_fill(~keep, 0.0) @ values


class StateReader(nn.Module):
    def __init__(self, kind: str, d: int):
        super().__init__()
        if kind not in PROJECTORS:
            raise ValueError(f"nsm projector: argument 'kind' expected one of {', '.join(PROJECTORS)}, got {kind!r}")
        self.kind = kind
        if kind != "direct":
            self.q, self.k, self.v = (nn.Linear(d, d, bias=False) for _ in range(3))
        if kind != "attention":
            self.affinity = nn.Linear(d, 1)  # W_o of the source: one logit per state
        if kind == "hybrid":
            self.mix = nn.Linear(d, d)  # the gate between the two reads, from the token
        self.out = nn.Linear(d, d, bias=False)

    def forward(self, u, h, w=None, p=None):
        """u [B, n, L, D]; h [B, n, S, D] or [B, n, L, S, D] -> the residual update [B, n, L, D].

        With w [B, n, L, S] and p [B, n, L, D] (the linear within-chunk path, h per chunk),
        token t reads the states ``h + sum_{t' <= t} w_t' p_t'`` of its chunk, computed
        without forming them: ``x . (h_s + sum w_t's p_t') = x . h_s + sum_t' w_t's (x . p_t')``
        and ``sum_s a_s (h_s + ...) = a h + sum_t' (a . w_t') p_t'``, matmuls over the chunk."""
        reads = []
        if self.kind != "direct":
            q = self.q(u) @ self.k.weight  # [B, n, L, D]: W_k^T W_q u, the query in state space
            scores = _dot(h, q)
            if w is not None:
                scores = scores + _causal(q @ p.transpose(-1, -2), w)
            reads.append(self.v(self._mixed(torch.softmax(scores / math.sqrt(u.shape[-1]), dim=-1), h, w, p)))
        if self.kind != "attention":
            logits = self.affinity(h).squeeze(-1)  # [B, n, (L,) S]
            if h.dim() == 4:
                logits = logits[:, :, None]
            if w is not None:
                logits = logits + torch.cumsum(w * (p @ self.affinity.weight[0])[..., None], dim=2)
            reads.append(self._mixed(torch.softmax(logits, dim=-1), h, w, p).expand_as(u))
        if self.kind == "hybrid":
            g = torch.sigmoid(self.mix(u))
            return self.out(g * reads[0] + (1 - g) * reads[1])
        return self.out(reads[0])

    @staticmethod
    def _mixed(a, h, w, p):
        """sum_s a_s (states the token reads)_s: a [B, n, L, S] -> [B, n, L, D]."""
        mixed = _mix(a, h)
        if w is not None:
            mixed = mixed + _causal(a @ w.transpose(-1, -2), p)
        return mixed
