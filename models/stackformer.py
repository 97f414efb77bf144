"""stackformer (seed 001): a small banked-attention core that thinks over a differentiable
stack of (embedding, memories) pairs (DESIGN.md 7.5).

Large embeddings (``d_big`` = ``d_model``) flow through the model; each thinking step
projects the read of the stack through a bottleneck into a small core (``d_core``): L
causal layers of ``ops.banked_attention`` and a SwiGLU feedforward, pre-norm residual as
in a transformer. The core's output is concatenated with the large vector, passed through
a feedforward and add+LayerNorm'ed with it:

    y = LayerNorm(x + FFN([core(down(norm(x))), x]))          # x, y: [B, d_big]

Memory banks. "The memories are banked, not defined per layer": with
``bank_scope="shared"`` (default) there is one pool of N banks per head, ``(S [B, H, N,
Dk, Dv], z [B, H, N, Dk])``, and every core layer reads and writes it in turn, each by
its own read and write logits (layer 2 sees what layer 1 wrote in the same step, as the
op's write-then-read order has a token see its own write). ``bank_scope="layer"`` gives
each layer its own pool (the ablation). Per token a layer predicts its read and write
logits and, with ``token_decay=True`` (default), its decay logits: a learned bias
``decay_logits [H, N]`` (initialised to spread lam = sigmoid over (0.73, 0.98): short and
long memories) plus a linear map of the token, zero-initialised so a new model starts
from the bias alone; the op takes them per token as ``[B, 1, H, N]``. A bank decays only
where it is written; reading never decays (the op's math). ``token_decay=False`` keeps
the static ``[H, N]`` parameter (the ablation).

Write logits and the source's "write from the update, after the read": the op's
contract writes, then reads (the current token sees itself), so within one op call a
write cannot depend on that call's read without a second call per layer and a read-only
mode the op does not have. The choice here: each layer's read and write logits are
linear maps of its normed input; across thinking steps the source's order holds, since
every step after a token's first reads the stack top, which is the previous step's
update (the core's output after its reads), so the writes of step s are a function of
what steps < s read.

The processing stack (``ops.stack_step``; slot 0 is the top, contents weighted by their
mass). With ``memory_stack=True`` (default) every slot is an (embedding, memories) pair,
the memories being the core's banks flattened to one vector per slot (``F`` floats:
``(S, z)`` of every pool). Token t starts a fresh stack holding (its embedding, the
memories handed on by token t-1) with mass 1, then repeats (``think_step``):

    1. read the top superposition: x = values_0 [B, d_big]; memories = mem_0 / mass_0
       (the item, not its mass-weighted content: the banks must not shrink by mass_0
       at every step; mass decreases with depth, so mass_0 >= total / K >= halt_mass / K
       whenever a step runs)
    2. run the core:  y, memories' = block(x, memories)          # banks read and written
    3. the top pair becomes the processed pair (values_0 <- mass_0 y, mem_0 <- mass_0
       memories', mass unchanged)
    4. (push, noop, pop) = softmax(W_a y + b_a); a push puts (W_p y, memories') on top,
       so the processed pair below it keeps the memories as they were at the push, and a
       later pop brings them back
    5. stack_step on both stacks with the same actions; accumulate what pops off:
       popped = pop * (values_0, mem_0) is already weighted by its popped mass
       pop * mass_0 (ACT style: Graves 2016)

and stops when the stack's total mass is below ``halt_mass`` or after ``max_steps`` steps.
What is left in the stack when it stops is flushed like ACT's remainder, so the token's
hidden state is the mass-weighted mean of every embedding that left or stayed in the stack,
``norm((sum popped_value + sum_k values_k) / (sum popped_mass + sum_k mass_k))``, and the
memories handed to token t+1 are the same mean of the memories (the source's
``embedding_results, memory_results``). The denominator is at least 1 (pushes add mass,
pops remove it), so it never divides by a vanishing mass. The two stacks are two
``stack_step`` calls with the same actions and mass, not one call on concatenated
[embedding, memories] slots: the embedding call is then the very call of the ablation
(``memory_stack=False``), so a report's difference between the two is the memory stack's
own call, and no step copies the embedding stack into a concatenated buffer.

With ``memory_stack=False`` (the ablation, the model before issue 19) one bank state is
carried and overwritten by every thinking step, and only embeddings are on the stack.
Step 3 (the top item becomes the processed item) is this family's choice where DESIGN
leaves it open: without it a pop would emit the unprocessed embedding. The action bias
starts at (0, 0, ``pop_bias``): a new model pops early and thinks about two steps a
token, and learns to push (think longer) where it pays, as ACT's halting bias starts
shallow.

Causality and time: the stack loop runs per token, left to right, and the memories carry
across time, so a token sees the writes of every earlier token and nothing later; the
work per token is at most ``max_steps`` core passes over fixed-size state, whatever the
sequence length; chunked == one pass == one token at a time, exactly. In a batch the loop
runs while any row still thinks; a row that stopped keeps its stacks and accumulators
(its step is computed and discarded), so a row's result never depends on the other rows.
Padding tokens (mask False) take no step and hand the memories on unchanged; their output
is their normed embedding.

Memory. Backpropagation through the per-token loop keeps every thinking step's graph:
with the memory stack each step holds several [B, K, F] copies (F = 2,176 floats at the
default width), so training memory grows as B x T x steps x K x F (one forward and
backward at B=16, T=256 under numba_cpu: 2.6 GiB peak resident, about 2 GiB of it the
graph; T=1,024 four times that). ``checkpoint_tokens=True`` wraps each token's thinking in activation
checkpointing (``torch.utils.checkpoint``, non-reentrant): the forward keeps only what
crosses tokens (the embedding, the memories [B, F] handed on, the hidden vector) and the
backward recomputes one token's steps at a time, the standard trade of deep unrolled
recurrences (about one more forward of compute for memory O(B x T x (d + F)); measured
at B=16, T=256: 1.1 GiB and 1.6x the time; T=512: 1.7 GiB). Off by default, so a step's
time is the model's own; the bake-off turns it on (suites/bakeoff.py).

``think_step`` is one thinking step and ``think_token`` one token's whole thinking
(``max_steps`` steps, no early stop: the same result), each a function of fixed-shape
tensors (shapes fixed by the config and the batch). ``model.compile_step()``
(models/common.py, DESIGN 9) compiles ``think_token``: one graph a token, forward and
backward, and the loop over tokens stays in Python. Measured at B=4, T=256, d=64 on the
2-core CPU (one training step, two runs): the compiled token 1,635 and 1,610 ms against
2,265 and 2,229 ms for torch.compile of the whole model (1.39x; its graph breaks at the
early stop's host read every step, so it too compiles piece by piece) and 8,682 and
7,670 ms eager; compiling the single step instead (four compiled calls a token and the
eager work between them) ran 2,069 ms (results/cpu/2026-12-06-xeon-2core). The compiled token
compiles twice (the first token's inputs differ in requires_grad), not again for another
length, and gives the eager hidden states and gradients (tests/test_compiled_step.py).

State: ``{"banks": [(S [B, H, N, Dk, Dv], z [B, H, N, Dk]) per pool]}``, one pool when
shared, one per core layer otherwise.
Thinking record: ``forward`` keeps ``self.last_aux`` (also returned by ``think``):
``steps`` [B, T] int64 (steps taken per token; ``max_steps`` where the limit stopped it),
``halted`` [B, T] bool (True where the mass threshold stopped it, False where the step
limit did or the token is padding), and the mass bookkeeping ``popped_mass``,
``left_mass``, ``pushed_mass``, ``dropped_mass`` [B, T] (popped + left + dropped = 1 +
pushed, the 1 being the embedding; the memories share these masses). ``thinking_summary``
turns it into record fields (steps per token: mean and histogram; mean masses).
``causal=False`` runs the same left-to-right model (the stack loop is sequential by
nature); it only refuses a carried state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from models import register_family
from models.common import RMSNorm, SequenceModel, StepLoop, SwiGLU
from models.config import ModelConfig, choices, invalid, limits

MIN_TOP_MASS = 1e-6  # the read of the top memories divides by mass_0, floored here (halt_mass = 0 configs)


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
    memory_stack: bool = True  # slots hold (embedding, memories); False: one carried bank state (ablation)
    bank_scope: str = field(default="shared", metadata=choices("shared", "layer"))  # one pool for all layers, or one each
    token_decay: bool = True  # decay logits = bias + linear map of the token; False: a static [H, N] parameter
    checkpoint_tokens: bool = False  # training keeps one token's thinking graph at a time (recomputed in backward)

    def check(self):
        if self.d_core % self.n_heads:
            raise invalid(self.family, "d_core", f"a multiple of n_heads={self.n_heads}", self.d_core)

    @property
    def n_pools(self) -> int:
        """Bank pools: one shared by every core layer, or one per layer."""
        return 1 if self.bank_scope == "shared" else self.n_layers

    def pool_sizes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Per-row shapes of one pool's (S, z): ([H, N, Dk, Dv], [H, N, Dk]), Dv = Dk."""
        H, N, Dk = self.n_heads, self.n_banks, self.d_core // self.n_heads
        return (H, N, Dk, Dk), (H, N, Dk)

    @property
    def memory_size(self) -> int:
        """F: the floats of every pool's (S, z) of one batch row, the memories of one slot."""
        s, z = self.pool_sizes()
        return self.n_pools * (_numel(s) + _numel(z))


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def flatten_banks(banks) -> torch.Tensor:
    """[(S [B, H, N, Dk, Dv], z [B, H, N, Dk]) per pool] -> memories [B, F]."""
    return torch.cat([t.flatten(1) for bank in banks for t in bank], dim=1)


def unflatten_banks(mem: torch.Tensor, cfg: StackformerConfig) -> list:
    """memories [B, F] -> [(S, z) per pool], views of ``mem``."""
    B = mem.shape[0]
    shapes = cfg.pool_sizes()
    parts = mem.split([_numel(s) for _ in range(cfg.n_pools) for s in shapes], dim=1)
    return [(parts[2 * p].view(B, *shapes[0]), parts[2 * p + 1].view(B, *shapes[1])) for p in range(cfg.n_pools)]


class CoreLayer(nn.Module):
    """Pre-norm residual: x += out(banked_attention(...)); x += swiglu(norm(x)). x: [B, T, d_core]."""

    def __init__(self, cfg: StackformerConfig):
        super().__init__()
        self.h, self.n = cfg.n_heads, cfg.n_banks
        self.norm1, self.norm2 = RMSNorm(cfg.d_core), RMSNorm(cfg.d_core)
        self.qkv = nn.Linear(cfg.d_core, 3 * cfg.d_core, bias=False)
        self.route = nn.Linear(cfg.d_core, 2 * cfg.n_heads * cfg.n_banks)  # read and write logits per token
        # lam = sigmoid(decay_logits) spread over (0.73, 0.98): banks with short and long memories;
        # with token_decay the bias of the per-token decay, else the static decay
        self.decay_logits = nn.Parameter(torch.linspace(1.0, 4.0, cfg.n_banks).repeat(cfg.n_heads, 1))  # [H, N]
        self.decay_map = None
        if cfg.token_decay:  # zero: a new model's decay is the bias alone; the map learns from there
            self.decay_map = nn.Linear(cfg.d_core, cfg.n_heads * cfg.n_banks, bias=False)
            nn.init.zeros_(self.decay_map.weight)
        self.out = nn.Linear(cfg.d_core, cfg.d_core, bias=False)
        self.ffn = SwiGLU(cfg.d_core)

    def forward(self, x, ops, state):
        B, T, d = x.shape
        u = self.norm1(x)
        q, k, v = self.qkv(u).view(B, T, 3, self.h, d // self.h).unbind(2)  # [B, T, H, Dk] each
        read, write = self.route(u).view(B, T, 2, self.h, self.n).unbind(2)  # [B, T, H, N] each
        decay = self.decay_logits  # [H, N]
        if self.decay_map is not None:
            decay = decay + self.decay_map(u).view(B, T, self.h, self.n)  # [B, T, H, N]
        o, state = ops.banked_attention(q, k, v, read, write, decay, state)  # [B, T, H, Dv]
        x = x + self.out(o.reshape(B, T, d))
        return x + self.ffn(self.norm2(x)), state


class StackBlock(nn.Module):
    """One thinking step's transform of a big vector and the memories:
    y = LN(x + FFN([core(down(norm(x))), x]))."""

    def __init__(self, cfg: StackformerConfig):
        super().__init__()
        self.cfg = cfg
        d, dc = cfg.d_model, cfg.d_core
        self.norm_in = RMSNorm(d)
        self.down = nn.Linear(d, dc, bias=False)  # the bottleneck into the core
        self.core = nn.ModuleList(CoreLayer(cfg) for _ in range(cfg.n_layers))
        self.norm_core = RMSNorm(dc)
        hidden = cfg.ffn_hidden or 2 * d
        self.ffn = nn.Sequential(nn.Linear(dc + d, hidden), nn.GELU(), nn.Linear(hidden, d))
        self.ln = nn.LayerNorm(d)

    def forward(self, x, ops, mem):
        """x [B, d_big]; mem [B, F] (the pools' banks, flattened) -> y [B, d_big], new mem [B, F].
        Shared scope: every layer reads and writes pool 0 in turn; layer scope: layer l its pool l."""
        c = self.down(self.norm_in(x))[:, None]  # [B, 1, d_core]
        pools = unflatten_banks(mem, self.cfg)
        for i, layer in enumerate(self.core):
            p = 0 if self.cfg.bank_scope == "shared" else i
            c, pools[p] = layer(c, ops, pools[p])
        c = self.norm_core(c[:, 0])  # [B, d_core]
        return self.ln(x + self.ffn(torch.cat([c, x], dim=-1))), flatten_banks(pools)


class Thought(NamedTuple):
    """The loop state of one token's thinking, fixed shapes for a config and batch B:
    values [B, K, d]; mass [B, K]; mem [B, K, F] (memory stack) or [B, F] (the carried
    banks); acc_v [B, d]; acc_mem [B, F] (memory stack) or [B, 0]; acc_m, pushed,
    dropped [B]; steps [B] int64; active [B] bool."""

    values: torch.Tensor
    mass: torch.Tensor
    mem: torch.Tensor
    acc_v: torch.Tensor
    acc_mem: torch.Tensor
    acc_m: torch.Tensor
    pushed: torch.Tensor
    dropped: torch.Tensor
    steps: torch.Tensor
    active: torch.Tensor


@register_family
class Stackformer(SequenceModel):
    """Banked-attention core thinking over a differentiable stack of (embedding, memories),
    ACT-style halting by stack mass."""

    Config = StackformerConfig
    # every value of the three switches: all on (the default; two core layers, so that
    # they share a pool), all off (the model before issue 19; one layer keeps the suite
    # short, and tests/test_stackformer.py runs per-layer pools with two)
    test_configs = (
        ("tiny", dict(d_model=16, d_core=8, n_heads=2, n_banks=2, n_layers=2, stack_depth=3, max_steps=3)),
        ("ablation", dict(d_model=16, d_core=8, n_heads=2, n_banks=2, n_layers=1, stack_depth=3, max_steps=3,
                          memory_stack=False, bank_scope="layer", token_decay=False)),
    )

    def __init__(self, config: StackformerConfig, ops):
        super().__init__(config, ops)
        self.block = StackBlock(config)
        self.act = nn.Linear(config.d_model, 3)  # (push, noop, pop) logits
        nn.init.normal_(self.act.weight, std=0.02)
        with torch.no_grad():
            self.act.bias.copy_(torch.tensor([0.0, 0.0, config.pop_bias]))
        self.push = nn.Linear(config.d_model, config.d_model)  # the embedding a push puts on top
        self.norm = RMSNorm(config.d_model)
        self.last_aux: dict | None = None

    @classmethod
    def ops_used(cls, config):
        return ("banked_attention", "stack_step")

    @classmethod
    def step_loop(cls, config):
        return StepLoop(("think_token",))

    def _empty_banks(self, B, ref):
        s, z = self.config.pool_sizes()
        return [(ref.new_zeros(B, *s), ref.new_zeros(B, *z)) for _ in range(self.config.n_pools)]

    def start_thought(self, e, active, mem):
        """The stack of a new token: (embedding e [B, d], memories mem [B, F]) on top with
        mass 1; active [B] bool (False: padding, takes no step)."""
        cfg = self.config
        B, d = e.shape
        K = cfg.stack_depth
        values = torch.cat([e[:, None], e.new_zeros(B, K - 1, d)], dim=1)  # [B, K, d]
        mass = torch.cat([e.new_ones(B, 1), e.new_zeros(B, K - 1)], dim=1)  # [B, K]
        if cfg.memory_stack:
            stack_mem = torch.cat([mem[:, None], mem.new_zeros(B, K - 1, mem.shape[1])], dim=1)  # [B, K, F]
            acc_mem = mem.new_zeros(mem.shape)
        else:
            stack_mem, acc_mem = mem, mem.new_zeros(B, 0)
        # distinct zero tensors and a contiguous copy of the mask column: a compiled
        # think_step guards on aliasing and strides, and would compile again at step 2
        # and for every sequence length otherwise
        return Thought(values, mass, stack_mem, e.new_zeros(B, d), acc_mem, e.new_zeros(B), e.new_zeros(B),
                       e.new_zeros(B), torch.zeros(B, dtype=torch.int64, device=e.device), active.contiguous())

    def think_step(self, th: Thought) -> Thought:
        """One thinking step (module docstring, steps 1-5) on fixed-shape tensors; rows
        that are not active keep their thought unchanged."""
        cfg = self.config
        values, mass, mem, acc_v, acc_mem, acc_m, pushed, dropped, steps, active = th
        top_mass = mass[:, :1]  # [B, 1]
        read = mem[:, 0] / top_mass.clamp_min(MIN_TOP_MASS) if cfg.memory_stack else mem  # [B, F]
        y, new_mem = self.block(values[:, 0], self.ops, read)  # [B, d], [B, F]
        actions = torch.softmax(self.act(y), dim=-1)  # [B, 3]
        processed = torch.cat([top_mass[..., None] * y[:, None], values[:, 1:]], dim=1)  # top item := y
        nv, nm, pv, pm = self.ops.stack_step(processed, mass, actions, self.push(y))
        a = active.to(y.dtype)  # [B]
        keep = active[:, None]
        if cfg.memory_stack:
            processed_mem = torch.cat([(top_mass * new_mem)[:, None], mem[:, 1:]], dim=1)  # top memories := new
            n_mem, _, p_mem, _ = self.ops.stack_step(processed_mem, mass, actions, new_mem)
            mem = torch.where(keep[..., None], n_mem, mem)
            acc_mem = acc_mem + a[:, None] * p_mem
        else:
            mem = torch.where(keep, new_mem, mem)
        return Thought(
            values=torch.where(keep[..., None], nv, values),
            mass=torch.where(keep, nm, mass),
            mem=mem,
            acc_v=acc_v + a[:, None] * pv,
            acc_mem=acc_mem,
            acc_m=acc_m + a * pm,
            pushed=pushed + a * actions[:, 0],
            dropped=dropped + a * actions[:, 0] * mass[:, -1],  # a push moves the bottom slot out
            steps=steps + active.long(),
            active=active & (nm.sum(-1) >= cfg.halt_mass),
        )

    def think_token(self, e, active, mem):
        """One token's thinking as one function of fixed-shape tensors, what
        ``compile_step`` compiles (one graph a token): all ``max_steps`` steps are taken,
        with no early stop when every row has halted. A halted row keeps its thought (its
        step is computed and discarded, as in a batch whose other rows think on), so the
        result and gradients are those of the early-stopping loop, at the cost of the steps
        it would have skipped (none where no row halts before the limit)."""
        return self._think_token(e, active, mem, early_stop=False)

    def _think_token(self, e, active, mem, early_stop: bool = True):
        """One token's stack loop. e [B, d]; active [B] bool; mem [B, F] the memories
        handed on by the token before. Returns the hidden vector [B, d], the memories
        for the next token [B, F] and the token's thinking record. ``early_stop``: end
        the loop once no row is active (a host read of the flags each step)."""
        cfg = self.config
        th = self.start_thought(e, active, mem)
        for _ in range(cfg.max_steps):
            if early_stop and not bool(th.active.any()):
                break
            th = self.think_step(th)
        left = th.mass.sum(-1)
        total = (th.acc_m + left)[:, None]  # >= 1
        h = (th.acc_v + th.values.sum(1)) / total
        mem = (th.acc_mem + th.mem.sum(1)) / total if cfg.memory_stack else th.mem
        record = {"steps": th.steps, "halted": (th.steps > 0) & (left < cfg.halt_mass), "popped_mass": th.acc_m,
                  "left_mass": left, "pushed_mass": th.pushed, "dropped_mass": th.dropped}
        return h, mem, record

    def think(self, tokens, state=None, mask=None):
        """forward, plus the thinking record (module docstring) as a dict of [B, T] tensors."""
        self.check_tokens(tokens, state, mask)
        B, T = tokens.shape
        emb = self.embed(tokens)  # [B, T, d]
        mem = flatten_banks(state["banks"] if state is not None else self._empty_banks(B, emb))  # [B, F]
        real = mask if mask is not None else torch.ones(B, T, dtype=torch.bool, device=tokens.device)
        hidden, records = [], []
        token = self.think_token if self.step_compiled else self._think_token  # compiled: one graph a token
        think_token = token
        if self.config.checkpoint_tokens and torch.is_grad_enabled():
            def think_token(e, active, m):  # one token's graph alive at a time (module docstring, Memory)
                return checkpoint(token, e, active, m, use_reentrant=False)
        # per-token views by unbind, not emb[:, t], whose T backwards would each build a
        # zero-filled [B, T, d] gradient; made contiguous, so a token's inputs have strides
        # that do not depend on T (a compiled token would compile again for every length)
        for emb_t, real_t in zip(emb.unbind(1), real.unbind(1)):
            h, mem, record = think_token(emb_t.contiguous(), real_t.contiguous(), mem)
            hidden.append(h)
            records.append(record)
        aux = {key: torch.stack([r[key] for r in records], dim=1) for key in records[0]}  # [B, T] each
        banks = [tuple(t.contiguous() for t in bank) for bank in unflatten_banks(mem, self.config)]
        return self.norm(torch.stack(hidden, dim=1)), {"banks": banks}, aux

    def forward(self, tokens, state=None, mask=None):
        """tokens [B, T] int64; state None or {"banks": [(S, z)] per pool}; returns
        hidden [B, T, d_model] and the banks after the last token. Keeps self.last_aux."""
        hidden, state, self.last_aux = self.think(tokens, state, mask)
        return hidden, state

    @property
    def last_steps(self):
        """[B, T] thinking steps per token of the last forward (None before the first)."""
        return None if self.last_aux is None else self.last_aux["steps"]

    def thinking(self, mask=None) -> dict | None:
        """``thinking_summary`` of the last forward (None before the first)."""
        if self.last_aux is None:
            return None
        return thinking_summary(self.last_aux, self.config.max_steps, mask)


def thinking_summary(aux: dict, max_steps: int, mask=None) -> dict:
    """Record fields from a thinking record (``Stackformer.think``'s aux) over the real
    tokens (mask [B, T] bool, True on real tokens; None: every token): ``tokens``;
    ``steps_mean``; ``steps_hist``, tokens that took s steps for s = 0 .. max_steps
    (0 only for padding, so it is 0 with a mask); ``halted_frac``, the share stopped by
    the mass threshold rather than the step limit; the mean ``pushed_mass``,
    ``popped_mass``, ``dropped_mass`` and ``left_mass`` per token. Plain Python numbers."""
    steps = aux["steps"]
    real = torch.ones_like(steps, dtype=torch.bool) if mask is None else mask.to(steps.device)
    if real.shape != steps.shape:
        raise ValueError(f"stackformer thinking_summary: argument 'mask' expected shape {tuple(steps.shape)}, "
                         f"got {tuple(real.shape)}")
    n = int(real.sum())
    s = steps[real]
    out = {"tokens": n, "steps_mean": s.double().mean().item() if n else 0.0,
           "steps_hist": torch.bincount(s, minlength=max_steps + 1).tolist(),
           "halted_frac": aux["halted"][real].double().mean().item() if n else 0.0}
    for key in ("pushed_mass", "popped_mass", "dropped_mass", "left_mass"):
        out[key] = aux[key].detach()[real].double().mean().item() if n else 0.0
    return out
