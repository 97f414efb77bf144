"""nsm (seed 003): neural state machines. Tokens are routed into S state vectors, the states
are carried from chunk to chunk by a gated update, and every token reads them back.

An NSM layer (pre-norm residual, then a SwiGLU feedforward like a transformer block):

    u_t = norm(x_t)                                                     # [B, T, D]
    routed, w = ops.nsm_route(u_chunk, w_route, b_route, mask, top_k)   # [B, S, D], [B, T, S]
    h_c = GRU(h_{c-1}, routed, mass)                                    # [B, S, D], chunk to chunk
    x_t += W_o sum_s softmax_s(W_q u_t . W_k h_s / sqrt(D)) W_v h_s     # token affinities

The gated update is a GRU cell shared by all states, its input the state's routed sum:
``r = sigmoid(W_r u + U_r h)`` (forget), ``z = sigmoid(W_z u + U_z h) * min(mass, 1)``
(update), ``c = tanh(W_c u + r * U_c h)`` (candidate), ``h' = h + z (c - h)``. ``mass``
is the routing weight the state received in the chunk, so a state no token was routed to
(top-k, padding) keeps its value. The initial states are learned (``h0`` [S, D]).
Optional communication (``communication=True``): multi-head self-attention among the S
states after each update, ``h += attn(norm(h))``.

Causality (``causal=True``): chunk boundaries sit at absolute positions that are
multiples of ``chunk``. A token of chunk c reads the states as if its chunk ended at the
token: ``GRU(h_{c-1}, routed prefix of its chunk up to and including itself)`` (then
communication), the causal cumulative routing of its own chunk's earlier tokens. At the
chunk's last token that is exactly h_c, so a token never sees a later token, and a
chunk's state is what its last token read. The carried state holds h_{c-1} and the
routed prefix of the unfinished chunk, so chunks of any size, one token at a time
included, equal one pass. The work per token is one S-state GRU (and the attention
among states): it does not grow with T. The chunk totals come from the op's ``states``
output, the prefixes from its ``weights``. ``causal=False`` (an encoder): the chunks are
propagated first and every token reads the final states.

Variants (``variant``):
- ``simple``: NSM layers only; GRU propagation, no communication, the direct projection.
- ``hybrid``: NSM layers interleaved with the transformer blocks of models/transformer.py
  (RoPE, KV cache) in the order of ``layer_pattern`` ("N" an NSM layer, "T" a block;
  ``len(layer_pattern) == n_layers``).
- ``memory``: an NTM-style external memory (Graves et al. 2014) of ``mem_slots`` rows
  of width D, carried chunk to chunk. Content addressing: ``w = softmax_M(beta cos(key,
  M_m))``, sharpened ``w^gamma / sum w^gamma`` (computed as ``softmax(gamma log w)``),
  ``beta = softplus``, ``gamma = 1 + softplus``. Every state is a read head and a write
  head: a chunk's states read memory with the keys of h_{c-1} and add ``W_m read`` to
  their GRU input (the same for every token of the chunk, causal); after the chunk's
  update, every state writes with erase and add, ``M <- M * prod_s (1 - w_s e_s^T) +
  sum_s w_s a_s^T``. The initial memory is learned.

State: ``{"pos": tokens seen, "mask": key mask of the hybrid's blocks or None, "layers":
[per layer: {"h", "u", "mass"[, "mem"]} for an NSM layer, (k, v) for a block]}`` with
h, u [B, S, D], mass [B, S], mem [B, mem_slots, D].

Routing weights: with ``model.record_routing = True`` every forward stores
``model.routing``, a list of ``[B, T, S]`` weights, one per NSM layer (detached);
``model.routing_weights(tokens, mask)`` runs a forward for them. ``routing_records``
turns them into the ``kind="routing"`` result records of the report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from models import register_family
from models.common import RMSNorm, SequenceModel, SwiGLU
from models.config import ModelConfig, choices, invalid, limits
from models.transformer import Block, TransformerConfig, rope_tables


@dataclass(frozen=True)
class NSMConfig(ModelConfig):
    family = "nsm"

    variant: str = field(default="simple", metadata=choices("simple", "hybrid", "memory"))
    n_states: int = field(default=8, metadata=limits(1))  # state vectors S per NSM layer
    chunk: int = field(default=8, metadata=limits(1))  # tokens per chunk: states are updated chunk to chunk
    top_k: int | None = field(default=None, metadata=limits(1))  # route each token to its k best states; None: all
    communication: bool = False  # multi-head attention among the states (not in variant 'simple')
    n_heads: int = field(default=4, metadata=limits(1))  # heads of the communication and of hybrid's blocks
    layer_pattern: str = "NT"  # hybrid: the layers in order, N = NSM layer, T = transformer block
    mem_slots: int = field(default=16, metadata=limits(1))  # memory: rows of the external memory
    ffn_hidden: int = field(default=0, metadata=limits(0))  # SwiGLU hidden size; 0: 8/3 d_model rounded up to 8

    def check(self):
        if self.top_k is not None and self.top_k > self.n_states:
            raise invalid(self.family, "top_k", f"None or an int <= n_states={self.n_states}", self.top_k)
        if self.variant == "simple" and self.communication:
            raise invalid(self.family, "communication", "False for variant='simple' (no communication)",
                          self.communication)
        if self.variant == "hybrid":
            if len(self.layer_pattern) != self.n_layers or set(self.layer_pattern) - set("NT") or \
                    "N" not in self.layer_pattern:
                raise invalid(self.family, "layer_pattern",
                              f"n_layers={self.n_layers} letters N (NSM) or T (transformer), at least one N",
                              self.layer_pattern)
            if self.d_model % self.n_heads or (self.d_model // self.n_heads) % 2:
                raise invalid(self.family, "d_model", f"a multiple of n_heads={self.n_heads} with an even "
                                                      "head size (the transformer blocks' RoPE)", self.d_model)
        if self.communication and self.d_model % self.n_heads:
            raise invalid(self.family, "d_model", f"a multiple of n_heads={self.n_heads} (communication)",
                          self.d_model)

    def layers(self) -> str:
        return self.layer_pattern if self.variant == "hybrid" else "N" * self.n_layers


class NSMLayer(nn.Module):
    def __init__(self, cfg: NSMConfig):
        super().__init__()
        D, S = cfg.d_model, cfg.n_states
        self.cfg = cfg
        self.norm1, self.norm2 = RMSNorm(D), RMSNorm(D)
        self.w_route = nn.Parameter(torch.randn(S, D) / math.sqrt(D))  # [S, D]
        self.b_route = nn.Parameter(torch.zeros(S))  # [S]
        self.h0 = nn.Parameter(0.1 * torch.randn(S, D))  # the learned initial states
        self.gru_in = nn.Linear(D, 3 * D)  # W_r, W_z, W_c of the routed input
        self.gru_h = nn.Linear(D, 3 * D, bias=False)  # U_r, U_z, U_c of the previous state
        if cfg.communication:
            self.comm_norm = RMSNorm(D)
            self.comm_qkv = nn.Linear(D, 3 * D, bias=False)
            self.comm_out = nn.Linear(D, D, bias=False)
        if cfg.variant == "memory":
            self.mem0 = nn.Parameter(0.1 * torch.randn(cfg.mem_slots, D))  # [M, D]
            self.read_head = nn.Linear(D, D + 2)  # key, beta, gamma
            self.write_head = nn.Linear(D, 3 * D + 2)  # key, beta, gamma, erase, add
            self.mem_in = nn.Linear(D, D, bias=False)  # the read vector into the GRU input
        self.q, self.k, self.v = (nn.Linear(D, D, bias=False) for _ in range(3))
        self.out = nn.Linear(D, D, bias=False)
        self.ffn = SwiGLU(D, cfg.ffn_hidden or None)

    def initial(self, B, ref):
        state = {"h": self.h0.expand(B, -1, -1), "u": ref.new_zeros(B, *self.h0.shape),
                 "mass": ref.new_zeros(B, self.h0.shape[0])}
        if self.cfg.variant == "memory":
            state["mem"] = self.mem0.expand(B, -1, -1)
        return state

    def gru(self, h, u, mass):  # h, u [..., S, D]; mass [..., S] -> [..., S, D]
        r_i, z_i, c_i = self.gru_in(u).chunk(3, dim=-1)
        r_h, z_h, c_h = self.gru_h(h).chunk(3, dim=-1)
        r = torch.sigmoid(r_i + r_h)
        z = torch.sigmoid(z_i + z_h) * mass.clamp(max=1.0)[..., None]
        c = torch.tanh(c_i + r * c_h)
        return h + z * (c - h)

    def communicate(self, h):  # [..., S, D] -> [..., S, D]
        if not self.cfg.communication:
            return h
        *lead, S, D = h.shape
        H = self.cfg.n_heads
        q, k, v = self.comm_qkv(self.comm_norm(h)).reshape(-1, S, 3, H, D // H).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)  # [X, H, S, Dh]
        return h + self.comm_out(y.transpose(1, 2).reshape(*lead, S, D))

    @staticmethod
    def address(mem, params):
        """Content addressing: mem [B, M, D]; params [B, S, D + 2] -> weights [B, S, M]."""
        key, beta, gamma = params[..., :-2], F.softplus(params[..., -2]), 1 + F.softplus(params[..., -1])
        sim = F.normalize(key, dim=-1) @ F.normalize(mem, dim=-1).transpose(1, 2)  # [B, S, M] cosine
        return torch.softmax(gamma[..., None] * torch.log_softmax(beta[..., None] * sim, dim=-1), dim=-1)

    def memory_term(self, state):
        """What the states read from memory with the keys of h_{c-1}, into their GRU input: [B, S, D]
        (zeros without a memory)."""
        if "mem" not in state:
            return torch.zeros_like(state["u"])
        return self.mem_in(self.address(state["mem"], self.read_head(state["h"])) @ state["mem"])

    def write_memory(self, h, mem):  # h [B, S, D], mem [B, M, D] -> mem [B, M, D]
        D = h.shape[-1]
        p = self.write_head(h)  # [B, S, 3D + 2]
        w = self.address(mem, torch.cat([p[..., :D], p[..., -2:]], dim=-1))  # [B, S, M]
        erase, add = torch.sigmoid(p[..., D:2 * D]), torch.tanh(p[..., 2 * D:3 * D])  # [B, S, D]
        keep = (1 - w[..., None] * erase[:, :, None, :]).prod(dim=1)  # [B, M, D]
        return mem * keep + torch.einsum("bsm,bsd->bmd", w, add)

    def update(self, state, routed, mass, mem_term):
        """The chunk is complete: h_c from the routed total, then the memory write."""
        h = self.communicate(self.gru(state["h"], routed + mem_term, mass))
        new = {"h": h, "u": torch.zeros_like(routed), "mass": torch.zeros_like(mass)}
        if "mem" in state:
            new["mem"] = self.write_memory(h, state["mem"])
        return new

    def read(self, u, h):
        """Token affinities: u [B, L, D]; h [B, L, S, D] (or [B, 1, S, D]) -> [B, L, D]."""
        scores = torch.einsum("bld,blsd->bls", self.q(u), self.k(h)) / math.sqrt(u.shape[-1])
        return self.out(torch.einsum("bls,blsd->bld", torch.softmax(scores, dim=-1), self.v(h)))

    def forward(self, x, state, pos, mask, ops):
        """x [B, T, D]; pos: tokens before x; mask [B, T] bool or None.
        Returns x, the new state and the routing weights [B, T, S]."""
        B, T, D = x.shape
        C, causal = self.cfg.chunk, self.cfg.causal
        u = self.norm1(x)
        reads, weights = [], []
        sizes, lo = [], 0
        while lo < T:  # segments up to each chunk boundary
            sizes.append(min(T - lo, C - (pos + lo) % C))
            lo += sizes[-1]
        # one split, not u[:, lo:hi] per segment, whose backwards would each build a
        # zero-filled [B, T, D] gradient
        segs = torch.split(u, sizes, dim=1)  # [B, L, D] each
        masks = [None] * len(sizes) if mask is None else torch.split(mask, sizes, dim=1)
        lo = 0
        for seg, seg_mask in zip(segs, masks):
            hi = lo + seg.shape[1]
            routed, w = ops.nsm_route(seg, self.w_route, self.b_route, seg_mask, self.cfg.top_k)
            weights.append(w)
            mem_term = self.memory_term(state)  # [B, S, D]
            if causal:
                prefix = state["u"][:, None] + torch.cumsum(w[..., None] * seg[:, :, None, :], dim=1)  # [B, L, S, D]
                prefix_mass = state["mass"][:, None] + torch.cumsum(w, dim=1)  # [B, L, S]
                h_tok = self.communicate(self.gru(state["h"][:, None], prefix + mem_term[:, None], prefix_mass))
                reads.append(self.read(seg, h_tok))
            total, total_mass = state["u"] + routed, state["mass"] + w.sum(1)
            if (pos + hi) % C == 0:
                state = self.update(state, total, total_mass, mem_term)
            else:
                state = dict(state, u=total, mass=total_mass)
            lo = hi
        if not causal:  # an encoder: every token reads the final states (a partial last chunk included)
            if T % C:
                state = self.update(state, state["u"], state["mass"], self.memory_term(state))
            reads.append(self.read(u, state["h"][:, None].expand(B, T, -1, -1)))
        x = x + torch.cat(reads, dim=1)
        return x + self.ffn(self.norm2(x)), state, torch.cat(weights, dim=1)


@register_family
class NSM(SequenceModel):
    """Neural state machine: tokens routed into S states, GRU-propagated chunk to chunk, read back by affinity."""

    Config = NSMConfig
    test_configs = (
        ("simple", dict(variant="simple", d_model=16, n_layers=1, n_states=4, chunk=4)),
        ("topk", dict(variant="simple", d_model=16, n_layers=1, n_states=4, chunk=4, top_k=2)),
        ("hybrid", dict(variant="hybrid", d_model=16, n_layers=2, layer_pattern="NT", n_heads=2, n_states=4,
                        chunk=4, communication=True)),
        ("memory", dict(variant="memory", d_model=16, n_layers=1, n_states=4, chunk=4, mem_slots=4)),
    )

    def __init__(self, config: NSMConfig, ops):
        super().__init__(config, ops)
        self.kinds = config.layers()
        if "T" in self.kinds:
            tcfg = TransformerConfig(vocab_size=config.vocab_size, d_model=config.d_model, n_layers=1,
                                     n_heads=config.n_heads, causal=config.causal, ffn_hidden=config.ffn_hidden)
            cos, sin = rope_tables(tcfg.max_seq_len, config.d_model // config.n_heads, tcfg.rope_base)
            self.register_buffer("cos", cos, persistent=False)
            self.register_buffer("sin", sin, persistent=False)
            self.rope_base = tcfg.rope_base
        self.layers = nn.ModuleList(NSMLayer(config) if kind == "N" else Block(tcfg) for kind in self.kinds)
        self.norm = RMSNorm(config.d_model)
        self.record_routing = False
        self.routing: list | None = None

    @classmethod
    def ops_used(cls, config):
        return ("nsm_route",)

    def _tables(self, start, stop):
        if stop > self.cos.shape[0]:  # grow the RoPE tables (long generation)
            self.cos, self.sin = rope_tables(2 * stop, self.cos.shape[1] * 2, self.rope_base, self.cos.device)
        return self.cos[start:stop], self.sin[start:stop]

    def forward(self, tokens, state=None, mask=None):
        """tokens [B, T] int64; state None or the dict of the module docstring; returns
        hidden [B, T, d_model] and the state after the last token."""
        self.check_tokens(tokens, state, mask)
        B, T = tokens.shape
        x = self.embed(tokens)
        pos = 0 if state is None else state["pos"]
        layer_states = [None] * len(self.layers) if state is None else state["layers"]
        key_mask = mask
        if "T" in self.kinds:
            if state is not None and (state["mask"] is not None or mask is not None):
                old = state["mask"] if state["mask"] is not None else tokens.new_ones(B, pos, dtype=torch.bool)
                new = mask if mask is not None else tokens.new_ones(B, T, dtype=torch.bool)
                key_mask = torch.cat([old, new], dim=1)
            cos, sin = self._tables(pos, pos + T)
        new_states, routing = [], []
        for kind, layer, layer_state in zip(self.kinds, self.layers, layer_states):
            if kind == "N":
                x, layer_state, w = layer(x, layer_state or layer.initial(B, x), pos, mask, self.ops)
                routing.append(w.detach())
            else:
                x, layer_state = layer(x, cos, sin, layer_state, key_mask)
            new_states.append(layer_state)
        self.routing = routing if self.record_routing else None
        return self.norm(x), {"pos": pos + T, "mask": key_mask if "T" in self.kinds else None, "layers": new_states}

    @torch.no_grad()
    def routing_weights(self, tokens, mask=None) -> list:
        """The routing weights [B, T, S] of every NSM layer for ``tokens`` (one fresh pass)."""
        was = self.record_routing
        self.record_routing = True
        try:
            self(tokens, mask=mask)
            return self.routing
        finally:
            self.record_routing = was


def routing_records(weights: list, tokens, mask=None, config_id: str = "", example: int = 0,
                    family: str = "nsm") -> list[dict]:
    """Result records of kind "routing" (bench/results.py) for one example of a batch:
    weights, one [B, T, S] tensor per NSM layer; tokens [B, T]; mask [B, T] or None.
    One record per layer: weights [T][S], tokens [T] and mask [T] as nested lists."""
    T = tokens.shape[1]
    row_mask = [True] * T if mask is None else [bool(m) for m in mask[example]]
    return [{"kind": "routing", "family": family, "config_id": config_id, "layer": layer,
             "weights": w[example].double().cpu().tolist(), "tokens": [int(t) for t in tokens[example]],
             "mask": row_mask} for layer, w in enumerate(weights)]
