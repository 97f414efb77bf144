"""nsm (seed 003): neural state machines. Tokens are routed into S state vectors, the states
are carried from chunk to chunk by a gated update, and every token reads them back.

An NSM layer (pre-norm residual, then a SwiGLU feedforward like a transformer block):

    u_t = norm(x_t)                                                     # [B, T, D]
    routed, w = ops.nsm_route(u_chunk, w_route, b_route, mask, top_k)   # [B, S, D], [B, T, S]
    h_c = gate(h_{c-1}, routed + memory read, mass)                     # [B, S, D], chunk to chunk
    h_c = h_c + attn(norm(h_c))                                         # communication (optional)
    x_t += projector(u_t, states the token may see)                     # models/nsm_projectors.py

The gate (``gate``: gru, lstm or seed, with ``state_norm`` and ``state_residual``) is in
models/nsm_gates.py; the learned initial states are ``h0`` [S, D] (an LSTM's cells start at
0). ``mass`` is the routing weight a state received in the chunk: a state no token was
routed to keeps its value. Communication, multi-head self-attention among the S states,
runs once per chunk on the committed states.

Causality (``causal=True``): chunk boundaries sit at absolute positions that are multiples
of ``chunk``. A token of chunk c reads the states committed by earlier chunks plus a causal
path through its own chunk's routed prefix (its own routing included), as
``within_chunk`` says:
- ``"linear"`` (default): the token reads ``h_{c-1,s} + W_p sum_{t' <= t} w_t's u_t'``, the
  committed states plus its chunk's routed prefix mapped by W_p (``prefix_map``). Being
  linear in the prefix it is never formed: the projector's dot products and sums are
  carried through it as matmuls over the chunk (models/nsm_projectors.py), the way chunked
  linear attention splits intra- and inter-chunk terms. The gate runs once per chunk.
- ``"gated"``: the token reads provisional states, the gate applied to h_{c-1} and its
  routed prefix (at the chunk's last token that is h_c before communication): the NSM of
  issue 19's start, now computed with the gate's maps per token or chunk and only its
  elementwise nonlinearity per token and state (``O(S D)`` a token, but some 15 passes
  over a ``[T, S, D]`` tensor: slower on a CPU than the linear path's matmuls).
Either way a token sees no later token, whatever the projector ("direct" included: its
affinities are computed from the states this token may see, never from the chunk's final
ones). Communication is a chunk-level step: it mixes committed states only, and reaches a
token from the next chunk on. The carried state holds the committed states and the
unfinished chunk's routed prefix, so chunks of any size, one token at a time included,
equal one pass. ``causal=False`` (an encoder): the chunks are propagated first and every
token reads the final states.

Cost (DESIGN 7.6: ``O(S D + D^2)`` a token and layer, whatever T). Every map that is affine
in the routed input or in the state is applied once per token or once per chunk and carried
through the routing sums, which are linear. Per chunk: the gate's ``W_in`` on the op's
routed sums (``states`` output) and ``W_h`` on the committed states, ``O(S G D^2 / chunk)``
a token, at most ``G D^2`` for ``chunk >= n_states`` (the defaults: 64 and 32); communication and memory
likewise. Per token: routing ``O(S D)``, W_p or W_in ``O(D^2)``, the read's query
``W_k^T W_q u`` and its value and output maps ``O(D^2)`` (the key and value maps folded
into the query and the mixed state, models/nsm_projectors.py), dot products and weighted
sums against the S states ``O(S D)``; the linear path's within-chunk matmuls add
``O(chunk (S + D))`` (a constant: 3 S D at the defaults, S = 32, D = 64); the gated path's
``W_in routed_prefix_t = sum_{t' <= t} w_t' (W_in u_t')`` is a weighted cumulative sum per
state, ``O(S G D)``. Nothing maps a state through a D x D matrix per token. The chunks are
laid out as ``[B, n_chunks, chunk]`` (the first and last padded with unrouted rows) so that
one routing call and one batched pass do every token; only the chunk-to-chunk commit is a
loop. The default ``chunk = 64`` is the chunk of chunked linear-attention kernels (GLA,
Mamba-2); on the 2-core CPU it also halves the commits of 32 (measured, one thread, busy
machine: B=4, T=2048 forward + backward 442 ms at chunk 32, 371 ms at 64, 309 ms at 128).

Variants (``variant``):
- ``simple``: NSM layers only, no communication; the source's defaults (GRU, direct
  projection); gate and projector may be switched for ablation.
- ``hybrid``: NSM layers interleaved with the transformer blocks of models/transformer.py
  (RoPE, KV cache) in the order of ``layer_pattern`` ("N" an NSM layer, "T" a block;
  ``len(layer_pattern) == n_layers``). ``embeddings="separate"`` gives the NSM layers a
  token embedding of their own, added to what they route and read with (``u = norm(x +
  E_nsm(tokens))``), so that the states see token identity beside what the blocks made of
  it; ``"shared"``: both kinds read the one stream started by the tied embedding.
- ``memory``: an NTM external memory (models/nsm_memory.py: content and location
  addressing, erase/add writes), carried chunk to chunk; every state is a read head and a
  write head. A chunk's states read memory with the keys of h_{c-1}, the read entering
  their gate input (the same for every token of the chunk, causal); after the chunk's
  update every state writes.

State: ``{"pos": tokens seen, "mask": key mask of the hybrid's blocks or None, "layers":
[per layer: a dict for an NSM layer, (k, v) for a block]}``. An NSM layer's dict:
h [B, S, D] (committed states), cell [B, S, D] (lstm), hp = W_h h [B, S, G*D], acc = W_in of
the unfinished chunk's routed prefix and memory read, plus b [B, S, G*D], mass [B, S], pp = W_p of
that prefix [B, S, D] (within_chunk "linear"), and for
``memory`` mem [B, M, D], w_read, w_write [B, S, M].

Routing and communication weights: with ``model.record_routing = True`` every forward
stores ``model.routing`` (one ``[B, T, S]`` tensor per NSM layer) and
``model.communication`` (one ``[B, commits, H, S, S]`` tensor per NSM layer, the attention
of each chunk the call completed, 0 rows if none; None without communication), detached. ``routing_weights`` and
``communication_weights`` run a forward for them; ``routing_records`` turns routing weights
into the ``kind="routing"`` result records of the report.

``NSM.chunk_step(tokens, layers)`` is one aligned chunk through an NSM-only model as a
function of fixed-shape tensors. ``model.compile_step()`` compiles it once (a causal
NSM-only config); a call of whole chunks from a chunk boundary without a mask then runs
as a Python loop over the compiled step (``_by_chunks``), any other call eagerly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from models import register_family
from models.common import RMSNorm, SequenceModel, StepLoop, SwiGLU
from models.config import ModelConfig, choices, invalid, limits
from models.nsm_gates import GATE_WIDTH, StateGate
from models.nsm_memory import NTMemory
from models.nsm_projectors import PROJECTORS, StateReader
from models.transformer import Block, TransformerConfig, rope_tables


@dataclass(frozen=True)
class NSMConfig(ModelConfig):
    family = "nsm"

    variant: str = field(default="simple", metadata=choices("simple", "hybrid", "memory"))
    n_states: int = field(default=32, metadata=limits(1))  # state vectors S per NSM layer (the source's 32-128)
    chunk: int = field(default=64, metadata=limits(1))  # tokens per chunk; >= n_states keeps W_h's cost <= D^2 a token
    top_k: int | None = field(default=None, metadata=limits(1))  # route each token to its k best states; None: all
    gate: str = field(default="gru", metadata=choices(*GATE_WIDTH))  # the state propagator
    state_norm: bool = False  # LayerNorm of the propagated states
    state_residual: bool = False  # skip connection around the propagator: new += prev
    projector: str = field(default="direct", metadata=choices(*PROJECTORS))  # how tokens read the states
    within_chunk: str = field(default="linear", metadata=choices("linear", "gated"))  # a token's causal path
    communication: bool = False  # multi-head attention among the states (not in variant 'simple')
    n_heads: int = field(default=4, metadata=limits(1))  # heads of the communication and of hybrid's blocks
    layer_pattern: str = "NT"  # hybrid: the layers in order, N = NSM layer, T = transformer block
    embeddings: str = field(default="shared", metadata=choices("shared", "separate"))  # hybrid: NSM's own embedding
    mem_slots: int = field(default=16, metadata=limits(1))  # memory: rows of the external memory
    ffn_hidden: int = field(default=0, metadata=limits(0))  # SwiGLU hidden size; 0: 8/3 d_model rounded up to 8

    def check(self):
        if self.top_k is not None and self.top_k > self.n_states:
            raise invalid(self.family, "top_k", f"None or an int <= n_states={self.n_states}", self.top_k)
        if self.variant == "simple" and self.communication:
            raise invalid(self.family, "communication", "False for variant='simple' (no communication)",
                          self.communication)
        if self.embeddings == "separate" and self.variant != "hybrid":
            raise invalid(self.family, "embeddings", f"'shared' for variant={self.variant!r} (only the hybrid "
                                                     "has two kinds of layers)", self.embeddings)
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


class Communication(nn.Module):
    """Multi-head self-attention among the S states, ``h + W_o attn(norm(h))``; the weights are returned."""

    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm = RMSNorm(d)
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.out = nn.Linear(d, d, bias=False)

    def forward(self, h):  # [B, S, D] -> [B, S, D], weights [B, H, S, S]
        B, S, D = h.shape
        q, k, v = self.qkv(self.norm(h)).view(B, S, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(D // self.heads), dim=-1)  # [B, H, S, S]
        return h + self.out((att @ v).transpose(1, 2).reshape(B, S, D)), att


def _pad_time(x, front: int, back: int):
    """Pad axis 1 of x [B, T, ...] with front and back zero rows."""
    if not front and not back:
        return x
    return F.pad(x, (0, 0) * (x.dim() - 2) + (front, back))


class NSMLayer(nn.Module):
    def __init__(self, cfg: NSMConfig):
        super().__init__()
        D, S = cfg.d_model, cfg.n_states
        self.cfg = cfg
        self.norm1, self.norm2 = RMSNorm(D), RMSNorm(D)
        self.w_route = nn.Parameter(torch.randn(S, D) / math.sqrt(D))  # [S, D]
        self.b_route = nn.Parameter(torch.zeros(S))  # [S]
        self.h0 = nn.Parameter(0.1 * torch.randn(S, D))  # the learned initial states
        self.gate = StateGate(cfg.gate, D, cfg.state_norm, cfg.state_residual)
        self.comm = Communication(D, cfg.n_heads) if cfg.communication else None
        self.memory = NTMemory(D, S, cfg.mem_slots) if cfg.variant == "memory" else None
        self.reader = StateReader(cfg.projector, D)
        self.linear_path = cfg.causal and cfg.within_chunk == "linear"
        if self.linear_path:
            self.prefix_map = nn.Linear(D, D, bias=False)  # W_p: the routed prefix into state space
        self.ffn = SwiGLU(D, cfg.ffn_hidden or None)

    def initial(self, B: int) -> dict:
        """The state before the first token: h0, a zero LSTM cell, the initial memory."""
        # repeat, not expand: an expanded view of a parameter made under no_grad breaks
        # FlopCounterMode's module hooks ("Expected gradient function to be set")
        h = self.h0.repeat(B, 1, 1)
        cell = torch.zeros_like(h) if self.gate.has_cell else None
        return self._open_chunk(h, cell, None if self.memory is None else self.memory.initial(B))

    def _open_chunk(self, h, cell, memory) -> dict:
        """A chunk starts from committed states: W_h h once for the whole chunk, and the
        memory read (with h's keys) as the start of the routed input's sum."""
        state = {"h": h, "hp": self.gate.project_state(h), "mass": h.new_zeros(h.shape[:2])}
        if self.linear_path:
            state["pp"] = torch.zeros_like(h)
        if cell is not None:
            state["cell"] = cell
        bias = self.gate.w_in.bias  # [G*D]: the sum starts at b, so that it is the gate's input
        if memory is None:
            state["acc"] = bias.repeat(*h.shape[:2], 1)
        else:
            read, w_read = self.memory.read(h, memory)
            state.update(memory, w_read=w_read, acc=self.gate.project_input(read) + bias)
        return state

    def _commit(self, state, acc, mass):
        """The chunk is complete: h_c from the routed total, communication, the memory write.
        acc: W_in of the chunk's routed total (and memory read) + b [B, S, G*D]; mass [B, S].
        Returns the next chunk's opening state and the communication weights (or None)."""
        h, cell = self.gate.step(acc, state["hp"], state["h"], state.get("cell"), mass)
        att = None
        if self.comm is not None:
            h, att = self.comm(h)
        memory = None
        if self.memory is not None:
            mem, w_write = self.memory.write(h, state)
            memory = {"mem": mem, "w_read": state["w_read"], "w_write": w_write}
        return self._open_chunk(h, cell, memory), att

    def forward(self, x, state, pos, mask, ops, own_embedding=None):
        """x [B, T, D]; state: this layer's dict; pos: tokens before x; mask [B, T] bool or
        None; own_embedding [B, T, D] or None (hybrid, separate embeddings).
        Returns x, the new state and (routing weights [B, T, S], communication weights
        [B, commits, H, S, S] or None)."""
        B, T, D = x.shape
        C, S = self.cfg.chunk, self.cfg.n_states
        u = self.norm1(x if own_embedding is None else x + own_embedding)
        front = pos % C
        if front + T <= C:  # every token in the current chunk: no padding
            n, L, front = 1, T, 0
        else:
            n, L = -(-(front + T) // C), C
        back = n * L - front - T
        uc = _pad_time(u, front, back).view(B, n, L, D)
        if mask is not None or front or back:
            real = mask if mask is not None else torch.ones(B, T, dtype=torch.bool, device=x.device)
            mask = _pad_time(real, front, back).view(B * n, L)
        routed, w = ops.nsm_route(uc.view(B * n, L, D), self.w_route, self.b_route, mask, self.cfg.top_k)
        w = w.view(B, n, L, S)
        chunk_in = self.gate.project_input(routed.view(B, n, S, D))  # [B, n, S, G*D]: W_in once per chunk
        chunk_mass = w.sum(2)  # [B, n, S]
        if self.linear_path:
            p = self.prefix_map(uc)  # [B, n, L, D]: W_p once per token
            chunk_p = w.transpose(-1, -2) @ p  # [B, n, S, D]: W_p of each chunk's routed sum
        completes = not self.cfg.causal or (pos + T) % C == 0
        opens, atts = [], []
        # unbind, not chunk_in[:, j]: each index's backward would zero-fill a whole [B, n, ...] gradient
        per_chunk = zip(chunk_in.unbind(1), chunk_mass.unbind(1),
                        chunk_p.unbind(1) if self.linear_path else [None] * n)
        for j, (drive, routed_mass, routed_p) in enumerate(per_chunk):  # chunk to chunk: the only loop
            opens.append(state)
            acc, mass = state["acc"] + drive, state["mass"] + routed_mass
            if j < n - 1 or completes:
                state, att = self._commit(state, acc, mass)
                atts.append(att)
            elif self.linear_path:
                state = dict(state, acc=acc, mass=mass, pp=state["pp"] + routed_p)
            else:
                state = dict(state, acc=acc, mass=mass)
        if self.linear_path:  # each chunk's opening states, and the prefix path inside the reader
            # only the first chunk can open with a prefix (from an earlier call); the others open at a commit
            heads = [opens[0]["h"] + opens[0]["pp"]] + [s["h"] for s in opens[1:]]
            read = self.reader(uc, torch.stack(heads, 1), w, p)
        elif self.cfg.causal:
            read = self.reader(uc, self._token_states(uc, w, opens))
        else:  # an encoder: every token reads the final states
            read = self.reader(uc.view(B, 1, n * L, D), state["h"][:, None])
        x = x + read.reshape(B, n * L, D)[:, front:front + T]
        att = None
        if self.comm is not None:  # [B, commits, H, S, S]; no commit in this call: 0 rows
            att = torch.stack(atts, 1) if atts else x.new_zeros(B, 0, self.cfg.n_heads, S, S)
        weights = w.reshape(B, n * L, S)[:, front:front + T]
        return x + self.ffn(self.norm2(x)), state, (weights, att)

    def _token_states(self, uc, w, opens):
        """The causal path: each token's provisional states, the gate applied to its chunk's
        opening states and its routed prefix. uc [B, n, L, D]; w [B, n, L, S]; opens: the
        n chunks' opening states -> [B, n, L, S, D]."""
        first = {k: torch.stack([s[k] for s in opens], 1) for k in ("h", "hp", "acc", "mass")}  # [B, n, ...]
        v = self.gate.project_input(uc)  # [B, n, L, G*D]: W_in once per token
        acc = first["acc"][:, :, None] + torch.cumsum(w[..., None] * v[:, :, :, None], 2)
        mass = first["mass"][:, :, None] + torch.cumsum(w, 2)  # [B, n, L, S]
        cell = torch.stack([s["cell"] for s in opens], 1)[:, :, None] if self.gate.has_cell else None
        h, _ = self.gate.step(acc, first["hp"][:, :, None], first["h"][:, :, None], cell, mass)
        return h


@register_family
class NSM(SequenceModel):
    """Neural state machine: tokens routed into S states, gated chunk to chunk, read back by a projector."""

    Config = NSMConfig
    test_configs = (
        ("simple", dict(variant="simple", d_model=16, n_layers=1, n_states=4, chunk=4)),
        ("topk", dict(variant="simple", d_model=16, n_layers=1, n_states=4, chunk=4, top_k=2)),
        ("seed", dict(variant="simple", d_model=16, n_layers=1, n_states=4, chunk=4, gate="seed",
                      projector="attention", state_norm=True, state_residual=True)),
        ("hybrid", dict(variant="hybrid", d_model=16, n_layers=2, layer_pattern="NT", n_heads=2, n_states=4,
                        chunk=4, communication=True, projector="attention", embeddings="separate")),
        ("memory", dict(variant="memory", d_model=16, n_layers=1, n_states=4, chunk=4, mem_slots=4, gate="lstm",
                        projector="hybrid", within_chunk="gated")),
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
        self.nsm_embed = None
        if config.embeddings == "separate":
            self.nsm_embed = nn.Embedding(config.vocab_size, config.d_model)
            nn.init.normal_(self.nsm_embed.weight, std=0.02)
        self.norm = RMSNorm(config.d_model)
        self.record_routing = False
        self.routing: list | None = None
        self.communication: list | None = None

    @classmethod
    def ops_used(cls, config):
        return ("nsm_route",)

    @classmethod
    def step_loop(cls, config):
        """``chunk_step`` for a causal NSM-only model; the hybrid's KV cache grows with T
        (no fixed shapes) and an encoder's tokens read the whole sequence's final states."""
        if "T" in config.layers():
            return StepLoop((), "nsm: the hybrid's transformer blocks carry a KV cache that grows with T, so no "
                                "step has fixed shapes; torch.compile of the whole model is the peer")
        if not config.causal:
            return StepLoop((), "nsm: an encoder's tokens (causal=False) read the states after the last chunk, so "
                                "no chunk can be finished on its own")
        return StepLoop(("chunk_step",))

    def _tables(self, start, stop):
        if stop > self.cos.shape[0]:  # grow the RoPE tables (long generation)
            self.cos, self.sin = rope_tables(2 * stop, self.cos.shape[1] * 2, self.rope_base, self.cos.device)
        return self.cos[start:stop], self.sin[start:stop]

    def forward(self, tokens, state=None, mask=None):
        """tokens [B, T] int64; state None or the dict of the module docstring; returns
        hidden [B, T, d_model] and the state after the last token."""
        self.check_tokens(tokens, state, mask)
        B, T = tokens.shape
        if self.step_compiled and self._whole_chunks(tokens, state, mask):
            return self._by_chunks(tokens, state)
        x = self.embed(tokens)
        own = None if self.nsm_embed is None else self.nsm_embed(tokens)
        pos = 0 if state is None else state["pos"]
        layer_states = [None] * len(self.layers) if state is None else state["layers"]
        key_mask = mask
        if "T" in self.kinds:
            if state is not None and (state["mask"] is not None or mask is not None):
                old = state["mask"] if state["mask"] is not None else tokens.new_ones(B, pos, dtype=torch.bool)
                new = mask if mask is not None else tokens.new_ones(B, T, dtype=torch.bool)
                key_mask = torch.cat([old, new], dim=1)
            cos, sin = self._tables(pos, pos + T)
        new_states, routing, communication = [], [], []
        for kind, layer, layer_state in zip(self.kinds, self.layers, layer_states):
            if kind == "N":
                x, layer_state, (w, att) = layer(x, layer_state or layer.initial(B), pos, mask, self.ops, own)
                routing.append(w.detach())
                communication.append(None if att is None else att.detach())
            else:
                x, layer_state = layer(x, cos, sin, layer_state, key_mask)
            new_states.append(layer_state)
        self.routing = routing if self.record_routing else None
        self.communication = communication if self.record_routing else None
        return self.norm(x), {"pos": pos + T, "mask": key_mask if "T" in self.kinds else None, "layers": new_states}

    def _whole_chunks(self, tokens, state, mask) -> bool:
        """Whether a call is whole chunks from a chunk boundary, without a mask or routing
        record: what the compiled ``chunk_step`` loop runs (anything else runs eagerly)."""
        C = self.config.chunk
        pos = 0 if state is None else state["pos"]
        return mask is None and not self.record_routing and pos % C == 0 and tokens.shape[1] % C == 0

    def _by_chunks(self, tokens, state):
        """``forward`` as a Python loop over ``chunk_step`` (the compiled step's loop)."""
        layers = self.initial_layers(tokens.shape[0]) if state is None else state["layers"]
        hidden = []
        # contiguous: a view's row stride is T, and the compiled step guards on strides
        for chunk in tokens.split(self.config.chunk, dim=1):  # [B, chunk] each
            h, layers = self.chunk_step(chunk.contiguous(), layers)
            hidden.append(h)
        self.routing = self.communication = None
        pos = 0 if state is None else state["pos"]
        return torch.cat(hidden, 1), {"pos": pos + tokens.shape[1], "mask": None, "layers": layers}

    def initial_layers(self, B: int) -> list[dict]:
        """The NSM layers' states before the first token (what ``chunk_step`` starts from)."""
        self._require_step()
        return [layer.initial(B) for layer in self.layers]

    def _require_step(self):
        if "T" in self.kinds:
            raise ValueError(f"nsm: chunk_step expected an NSM-only model (variant 'simple' or 'memory'), got "
                             f"variant={self.config.variant!r} (its transformer blocks' KV cache grows)")

    def chunk_step(self, tokens, layers: list[dict]):
        """One chunk, aligned to a chunk boundary, through every layer: tokens [B, chunk]
        int64; layers: the per-layer state dicts (``initial_layers`` or a previous step).
        Returns hidden [B, chunk, d_model] and the new layer states: fixed shapes in and out,
        the same math as ``forward`` (which it calls for exactly one chunk)."""
        self._require_step()
        if tokens.dim() != 2 or tokens.shape[1] != self.config.chunk:
            raise ValueError(f"nsm: chunk_step argument 'tokens' expected [B, chunk={self.config.chunk}], got "
                             f"{tuple(tokens.shape)}")
        x = self.embed(tokens)
        new = []
        for layer, own in zip(self.layers, layers):
            x, own, _ = layer(x, own, 0, None, self.ops)
            new.append(own)
        return self.norm(x), new

    @torch.no_grad()
    def _recorded(self, tokens, mask):
        was = self.record_routing
        self.record_routing = True
        try:
            self(tokens, mask=mask)
            return self.routing, self.communication
        finally:
            self.record_routing = was

    def routing_weights(self, tokens, mask=None) -> list:
        """The routing weights [B, T, S] of every NSM layer for ``tokens`` (one fresh pass)."""
        return self._recorded(tokens, mask)[0]

    def communication_weights(self, tokens, mask=None) -> list:
        """The communication attention [B, commits, H, S, S] of every NSM layer (None where
        the layer has none) for ``tokens`` (one fresh pass): the report's communication patterns."""
        return self._recorded(tokens, mask)[1]


def routing_records(weights: list, tokens, mask=None, config_id: str = "", example: int = 0,
                    family: str = "nsm", communication: list | None = None) -> list[dict]:
    """Result records of kind "routing" (bench/results.py) for one example of a batch:
    weights, one [B, T, S] tensor per NSM layer; tokens [B, T]; mask [B, T] or None;
    communication (``communication_weights``), one [B, commits, H, S, S] tensor or None per
    layer. One record per layer: weights [T][S], tokens [T] and mask [T] as nested lists,
    and where the layer communicates, ``communication`` [H][S][S]: each head's attention
    among the states, averaged over the chunks committed (the communication patterns)."""
    T = tokens.shape[1]
    row_mask = [True] * T if mask is None else [bool(m) for m in mask[example]]
    comm = communication or [None] * len(weights)
    out = []
    for layer, (w, c) in enumerate(zip(weights, comm)):
        rec = {"kind": "routing", "family": family, "config_id": config_id, "layer": layer,
               "weights": w[example].double().cpu().tolist(), "tokens": [int(t) for t in tokens[example]],
               "mask": row_mask}
        if c is not None and c.shape[1] > 0:
            rec["communication"] = c[example].double().mean(dim=0).cpu().tolist()  # [H, S, S]
        out.append(rec)
    return out
