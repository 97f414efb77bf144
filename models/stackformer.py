"""stackformer (seed 001): a small banked-attention core that thinks over a differentiable stack.

Large embeddings (``d_big`` = ``d_model``) flow through the model; each thinking step
projects the read of the stack through a bottleneck into a small core (``d_core``): L
causal layers of ``ops.banked_attention`` (N memory banks; read and write logits are
linear maps of the token, the decay logits a learned ``[H, N]`` parameter, and a bank
decays only where it is written: the op's math) and a SwiGLU feedforward, pre-norm
residual as in a transformer. The core's output is concatenated with the large vector,
passed through a feedforward and add+LayerNorm'ed with it:

    y = LayerNorm(x + FFN([core(down(norm(x))), x]))          # x, y: [B, d_big]

The processing stack (``ops.stack_step``; slot 0 is the top, contents weighted by their
mass). Token t starts a fresh stack holding its embedding with mass 1, then repeats:

    1. read the top superposition  x = values_0                  # [B, d_big]
    2. run the core                y = block(x)                  # banks read and written
    3. the top item becomes the processed item (values_0 <- mass_0 * y, mass unchanged)
    4. (push, noop, pop) = softmax(W_a y + b_a);  push_value = W_p y
    5. stack_step; accumulate what pops off: popped_value = pop * values_0 is already
       weighted by its popped mass pop * mass_0 (ACT style: Graves 2016)

and stops when the stack's total mass is below ``halt_mass`` or after ``max_steps`` steps.
What is left in the stack when it stops is flushed into the output like ACT's
remainder, so the token's hidden state is the mass-weighted mean of everything that left
or stayed in the stack: ``norm((sum popped_value + sum_k values_k) / (sum popped_mass +
sum_k mass_k))``. The denominator is at least 1 (pushes add mass p (1 - m_{K-1}), pops
remove it), so it never divides by a vanishing mass. Step 3 is this family's choice where
DESIGN leaves it open: without it a pop would emit the unprocessed embedding, and a
token's output would reach the core only through pushes. The action bias starts at
(0, 0, ``pop_bias``): a new model pops early and thinks about two steps a token, and
learns to push (think longer) where it pays, as ACT's halting bias starts shallow.

Causality and time: the stack loop runs per token, left to right, and the banks (the
``(S, z)`` state of every core layer) carry across thinking steps and across time, so a
token sees the writes of every earlier token's every thinking step and nothing later.
The work per token is at most ``max_steps`` core passes over a fixed-size state, whatever
the sequence length; chunked == one pass == one token at a time, exactly. In a batch the
loop runs while any row still thinks; a row that stopped keeps its stack, its banks and
its accumulators (its core output is computed and discarded), so a row's result never
depends on the other rows. Padding tokens (mask False) take no step and leave the banks
alone; their output is their normed embedding.

State: ``{"banks": [(S [B, H, N, Dk, Dv], z [B, H, N, Dk]) per core layer]}``.
Thinking record: ``forward`` keeps ``self.last_aux`` (also returned by ``think``):
``steps`` [B, T] int64 (steps taken per token; ``max_steps`` where the limit stopped it),
``halted`` [B, T] bool (True where the mass threshold stopped it, False where the step
limit did or the token is padding), and the mass bookkeeping ``popped_mass``,
``left_mass``, ``pushed_mass``, ``dropped_mass`` [B, T] (popped + left + dropped = 1 +
pushed, the 1 being the embedding). ``causal=False`` runs the same left-to-right model
(the stack loop is sequential by nature); it only refuses a carried state.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from models import register_family
from models.common import RMSNorm, SequenceModel, SwiGLU
from models.config import ModelConfig, invalid, limits


@dataclass(frozen=True)
class StackformerConfig(ModelConfig):
    family = "stackformer"

    d_core: int = field(default=32, metadata=limits(1))  # width of the small core (d_model is d_big)
    n_heads: int = field(default=2, metadata=limits(1))  # banked-attention heads; d_core % n_heads == 0
    n_banks: int = field(default=4, metadata=limits(1))  # memory banks N per head
    ffn_hidden: int = field(default=0, metadata=limits(0))  # hidden size of the big [core, x] feedforward; 0: 2 d_model
    stack_depth: int = field(default=4, metadata=limits(1))  # stack slots K
    max_steps: int = field(default=4, metadata=limits(1))  # thinking steps per token at most
    halt_mass: float = field(default=0.1, metadata=limits(0.0))  # stop once the stack's total mass is below this
    pop_bias: float = 3.0  # initial action bias (push, noop, pop) = (0, 0, pop_bias)

    def check(self):
        if self.d_core % self.n_heads:
            raise invalid(self.family, "d_core", f"a multiple of n_heads={self.n_heads}", self.d_core)


class CoreLayer(nn.Module):
    """Pre-norm residual: x += out(banked_attention(...)); x += swiglu(norm(x)). x: [B, T, d_core]."""

    def __init__(self, cfg: StackformerConfig):
        super().__init__()
        self.h, self.n = cfg.n_heads, cfg.n_banks
        self.norm1, self.norm2 = RMSNorm(cfg.d_core), RMSNorm(cfg.d_core)
        self.qkv = nn.Linear(cfg.d_core, 3 * cfg.d_core, bias=False)
        self.route = nn.Linear(cfg.d_core, 2 * cfg.n_heads * cfg.n_banks)  # read and write logits per token
        # lam = sigmoid(decay_logits) spread over (0.73, 0.98): banks with short and long memories
        self.decay_logits = nn.Parameter(torch.linspace(1.0, 4.0, cfg.n_banks).repeat(cfg.n_heads, 1))  # [H, N]
        self.out = nn.Linear(cfg.d_core, cfg.d_core, bias=False)
        self.ffn = SwiGLU(cfg.d_core)

    def forward(self, x, ops, state):
        B, T, d = x.shape
        u = self.norm1(x)
        q, k, v = self.qkv(u).view(B, T, 3, self.h, d // self.h).unbind(2)  # [B, T, H, Dk] each
        read, write = self.route(u).view(B, T, 2, self.h, self.n).unbind(2)  # [B, T, H, N] each
        o, state = ops.banked_attention(q, k, v, read, write, self.decay_logits, state)  # [B, T, H, Dv]
        x = x + self.out(o.reshape(B, T, d))
        return x + self.ffn(self.norm2(x)), state


class StackBlock(nn.Module):
    """One thinking step's transform of a big vector: y = LN(x + FFN([core(down(norm(x))), x]))."""

    def __init__(self, cfg: StackformerConfig):
        super().__init__()
        d, dc = cfg.d_model, cfg.d_core
        self.norm_in = RMSNorm(d)
        self.down = nn.Linear(d, dc, bias=False)  # the bottleneck into the core
        self.core = nn.ModuleList(CoreLayer(cfg) for _ in range(cfg.n_layers))
        self.norm_core = RMSNorm(dc)
        hidden = cfg.ffn_hidden or 2 * d
        self.ffn = nn.Sequential(nn.Linear(dc + d, hidden), nn.GELU(), nn.Linear(hidden, d))
        self.ln = nn.LayerNorm(d)

    def forward(self, x, ops, banks):
        """x [B, d_big]; banks [(S, z)] per core layer -> y [B, d_big], new banks."""
        c = self.down(self.norm_in(x))[:, None]  # [B, 1, d_core]
        new_banks = []
        for layer, bank in zip(self.core, banks):
            c, bank = layer(c, ops, bank)
            new_banks.append(bank)
        c = self.norm_core(c[:, 0])  # [B, d_core]
        return self.ln(x + self.ffn(torch.cat([c, x], dim=-1))), new_banks


@register_family
class Stackformer(SequenceModel):
    """Banked-attention core thinking over a differentiable stack, ACT-style halting by stack mass."""

    Config = StackformerConfig
    test_configs = (("tiny", dict(d_model=16, d_core=8, n_heads=2, n_banks=2, n_layers=1, stack_depth=3,
                                  max_steps=3)),)

    def __init__(self, config: StackformerConfig, ops):
        super().__init__(config, ops)
        self.block = StackBlock(config)
        self.act = nn.Linear(config.d_model, 3)  # (push, noop, pop) logits
        nn.init.normal_(self.act.weight, std=0.02)
        with torch.no_grad():
            self.act.bias.copy_(torch.tensor([0.0, 0.0, config.pop_bias]))
        self.push = nn.Linear(config.d_model, config.d_model)  # the value a push puts on top
        self.norm = RMSNorm(config.d_model)
        self.last_aux: dict | None = None

    @classmethod
    def ops_used(cls, config):
        return ("banked_attention", "stack_step")

    def _empty_banks(self, B, ref):
        cfg = self.config
        H, N, Dk = cfg.n_heads, cfg.n_banks, cfg.d_core // cfg.n_heads
        return [(ref.new_zeros(B, H, N, Dk, Dk), ref.new_zeros(B, H, N, Dk)) for _ in range(cfg.n_layers)]

    def _think_token(self, e, active, banks):
        """One token's stack loop. e [B, d]; active [B] bool (False: padding, takes no step).
        Returns the hidden vector [B, d], the banks, and the token's thinking record."""
        cfg = self.config
        B, d = e.shape
        K = cfg.stack_depth
        values = torch.cat([e[:, None], e.new_zeros(B, K - 1, d)], dim=1)  # [B, K, d]
        mass = torch.cat([e.new_ones(B, 1), e.new_zeros(B, K - 1)], dim=1)  # [B, K]
        acc_v, acc_m = e.new_zeros(B, d), e.new_zeros(B)
        pushed, dropped = e.new_zeros(B), e.new_zeros(B)
        steps = torch.zeros(B, dtype=torch.int64, device=e.device)
        for _ in range(cfg.max_steps):
            if not bool(active.any()):
                break
            y, new_banks = self.block(values[:, 0], self.ops, banks)  # [B, d]
            actions = torch.softmax(self.act(y), dim=-1)  # [B, 3]
            processed = torch.cat([mass[:, :1, None] * y[:, None], values[:, 1:]], dim=1)  # top item := y
            nv, nm, pv, pm = self.ops.stack_step(processed, mass, actions, self.push(y))
            a = active.to(e.dtype)  # [B]
            dropped = dropped + a * actions[:, 0] * mass[:, -1]  # a push moves the bottom slot out
            values = torch.where(active[:, None, None], nv, values)
            mass = torch.where(active[:, None], nm, mass)
            acc_v, acc_m = acc_v + a[:, None] * pv, acc_m + a * pm
            pushed = pushed + a * actions[:, 0]
            banks = [tuple(torch.where(active.view(B, *[1] * (n.dim() - 1)), n, o) for n, o in zip(new, old))
                     for new, old in zip(new_banks, banks)]
            steps = steps + active.long()
            active = active & (mass.sum(-1) >= cfg.halt_mass)
        left = mass.sum(-1)
        h = (acc_v + values.sum(1)) / (acc_m + left)[:, None]
        record = {"steps": steps, "halted": (steps > 0) & (left < cfg.halt_mass), "popped_mass": acc_m,
                  "left_mass": left, "pushed_mass": pushed, "dropped_mass": dropped}
        return h, banks, record

    def think(self, tokens, state=None, mask=None):
        """forward, plus the thinking record (module docstring) as a dict of [B, T] tensors."""
        self.check_tokens(tokens, state, mask)
        B, T = tokens.shape
        emb = self.embed(tokens)  # [B, T, d]
        banks = state["banks"] if state is not None else self._empty_banks(B, emb)
        real = mask if mask is not None else torch.ones(B, T, dtype=torch.bool, device=tokens.device)
        hidden, records = [], []
        # per-token views by unbind, not emb[:, t], whose T backwards would each build a
        # zero-filled [B, T, d] gradient
        for emb_t, real_t in zip(emb.unbind(1), real.unbind(1)):
            h, banks, record = self._think_token(emb_t, real_t, banks)
            hidden.append(h)
            records.append(record)
        aux = {key: torch.stack([r[key] for r in records], dim=1) for key in records[0]}  # [B, T] each
        return self.norm(torch.stack(hidden, dim=1)), {"banks": banks}, aux

    def forward(self, tokens, state=None, mask=None):
        """tokens [B, T] int64; state None or {"banks": [(S, z)] per core layer}; returns
        hidden [B, T, d_model] and the banks after the last token. Keeps self.last_aux."""
        hidden, state, self.last_aux = self.think(tokens, state, mask)
        return hidden, state

    @property
    def last_steps(self):
        """[B, T] thinking steps per token of the last forward (None before the first)."""
        return None if self.last_aux is None else self.last_aux["steps"]
